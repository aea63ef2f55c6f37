import { z } from 'zod';
import { configObject } from './config-object';

/**
 * Where a dataset comes from and how its images are augmented. Pure data: the renderer, the CLI and
 * the engine all validate configs with these schemas (spec section 1).
 */

export const DATASET_SPLITS = ['train', 'test'] as const;
export const DatasetSplit = z.enum(DATASET_SPLITS, { error: "split must be 'train' or 'test'" });
export type DatasetSplit = z.infer<typeof DatasetSplit>;

/** One class of the built-in procedural dataset, as the UI explains it. */
export interface BuiltinClassInfo {
  name: string;
  description: string;
}

/**
 * The classes of the built-in dataset, in label order. Colours, position, size, phase, noise and
 * distractor strokes vary per image and carry no class information; the class is the structure.
 */
export const BUILTIN_CLASSES: readonly BuiltinClassInfo[] = [
  {
    name: 'horizontal stripes',
    description: 'A grating whose stripes run within 15 degrees of horizontal; any frequency, phase and sharpness.',
  },
  {
    name: 'vertical stripes',
    description: 'A grating whose stripes run within 15 degrees of vertical; any frequency, phase and sharpness.',
  },
  {
    name: 'diagonal stripes',
    description: 'A grating whose stripes run near one of the two diagonals (45 or 135 degrees).',
  },
  {
    name: 'checkerboard',
    description: 'Two crossed gratings at right angles making a checker or diamond pattern, at any rotation.',
  },
  { name: 'rings', description: 'Concentric rings around a centre somewhere in the image, like a target.' },
  { name: 'disc', description: 'One filled, nearly round disc of any size at any position.' },
  { name: 'square', description: 'One filled square, rotated by any angle.' },
  { name: 'triangle', description: 'One filled equilateral triangle, rotated by any angle.' },
  { name: 'cross', description: 'A plus sign made of two bars at right angles, rotated by any angle.' },
  { name: 'dots', description: 'Four to eight small round dots of one colour scattered over the image.' },
];

export const BUILTIN_DEFAULT_SIZE: Record<DatasetSplit, number> = { train: 5000, test: 1000 };

const root = z.string({ error: 'root must be a path' }).trim().min(1, 'root must name a folder or file');
/** The side in pixels every image is resized to; `error` says what a missing or non-number value lacks. */
const pixelSide = (error: string) =>
  z
    .number({ error })
    .int('imageSize must be a whole number of pixels')
    .min(8, 'imageSize must be at least 8 pixels')
    .max(1024, 'imageSize must be at most 1024 pixels');
const imageSize = (fallback: number) => pixelSide('imageSize must be a number of pixels').default(fallback);
const split = DatasetSplit.default('train');
const onBadImage = z
  .enum(['stop', 'skip'], { error: "onBadImage must be 'stop' or 'skip'" })
  .default('stop')
  .describe('stop at an unreadable image (default), or skip it, count it and use the next readable one');

export const BuiltinSource = configObject({
  kind: z.literal('builtin'),
  split,
  /** Number of images in the split; default 5,000 for train and 1,000 for test. */
  size: z
    .number({ error: 'size must be a number of images' })
    .int('size must be a whole number of images')
    .min(1, 'size must be at least 1 image')
    .max(10_000_000, 'size must be at most 10,000,000 images')
    .optional(),
  seed: z
    .number({ error: 'seed must be a number' })
    .int('seed must be a whole number')
    .min(0, 'seed must be >= 0')
    .max(0xffffffff, 'seed must fit in 32 bits')
    .default(0),
  classes: z
    .number({ error: 'classes must be a number' })
    .int('classes must be a whole number')
    .min(2, 'classes must be at least 2')
    .max(BUILTIN_CLASSES.length, `the built-in dataset has at most ${BUILTIN_CLASSES.length} classes`)
    .default(BUILTIN_CLASSES.length),
  imageSize: imageSize(32).refine((s) => s >= 12, 'the built-in dataset needs imageSize >= 12 to draw its shapes'),
});
export type BuiltinSource = z.infer<typeof BuiltinSource>;

export const Cifar10Source = configObject({
  kind: z.literal('cifar10'),
  split,
  /** The extracted cifar-10-batches-bin folder, a folder holding it or the archive, or cifar-10-binary.tar.gz itself. */
  root,
});
export type Cifar10Source = z.infer<typeof Cifar10Source>;

export const FolderSource = configObject({
  kind: z.literal('folder'),
  split,
  /** Either <root>/<class>/... images, or <root>/train/<class>/... and <root>/val (or test)/<class>/... */
  root,
  imageSize: pixelSide('imageSize is required for an image folder (the side in pixels every image is resized to)'),
  /** Fraction held out as the test split when the folder has no train/ and val/ (or test/) sub-folders. */
  testFraction: z.number().min(0, 'testFraction must be >= 0').max(0.9, 'testFraction must be <= 0.9').default(0.1),
  onBadImage,
});
export type FolderSource = z.infer<typeof FolderSource>;

export const TinyImageNetSource = configObject({
  kind: z.literal('tiny-imagenet'),
  /** 'test' reads the labelled val/ split (the official test split has no labels). */
  split,
  /** The extracted tiny-imagenet-200 folder or the folder that holds it. */
  root,
  imageSize: imageSize(64),
  onBadImage,
});
export type TinyImageNetSource = z.infer<typeof TinyImageNetSource>;

export const DatasetSource = z.discriminatedUnion(
  'kind',
  [BuiltinSource, Cifar10Source, FolderSource, TinyImageNetSource],
  {
    error: "dataset kind must be one of 'builtin', 'cifar10', 'folder', 'tiny-imagenet'",
  },
);
export type DatasetSource = z.infer<typeof DatasetSource>;
export type DatasetSourceInput = z.input<typeof DatasetSource>;

const range = (name: string, lowest: number, highest: number) =>
  z
    .tuple([z.number(), z.number()], { error: `${name} must be a pair [min, max]` })
    .refine(([lo, hi]) => lo <= hi, `${name} must have min <= max`)
    .refine(([lo, hi]) => lo >= lowest && hi <= highest, `${name} must lie within [${lowest}, ${highest}]`);

/** No augmentation: evaluation, or feeding images as they are. */
export const NoAugmentation = configObject({ kind: z.literal('none') });

/**
 * MAE pre-training augmentation (torchvision RandomResizedCrop + RandomHorizontalFlip): a crop of
 * random area fraction `scale` and aspect ratio `ratio` (log-uniform), resized bilinearly back to the
 * image size, then mirrored with probability 1/2 when `flip`.
 */
export const RandomResizedCropAugmentation = configObject({
  kind: z.literal('random-resized-crop'),
  scale: range('scale', 1e-3, 1)
    .refine(([lo]) => lo > 0, 'scale min must be > 0')
    .default([0.2, 1.0]),
  ratio: range('ratio', 1e-2, 100).default([3 / 4, 4 / 3]),
  flip: z.boolean().default(true),
});

/** Weak augmentation for fine-tuning: zero-pad by `padding` pixels, crop back at a random offset, flip. */
export const PadCropAugmentation = configObject({
  kind: z.literal('pad-crop'),
  padding: z
    .number()
    .int('padding must be a whole number of pixels')
    .min(0, 'padding must be >= 0')
    .max(64, 'padding must be <= 64')
    .default(4),
  flip: z.boolean().default(true),
});

export const AugmentationConfig = z.discriminatedUnion(
  'kind',
  [NoAugmentation, RandomResizedCropAugmentation, PadCropAugmentation],
  {
    error: "augmentation kind must be one of 'none', 'random-resized-crop', 'pad-crop'",
  },
);
export type AugmentationConfig = z.infer<typeof AugmentationConfig>;
export type AugmentationConfigInput = z.input<typeof AugmentationConfig>;

/** The spec's defaults: RandomResizedCrop(0.2-1.0) + flip for pre-training, pad-4 crop + flip for fine-tuning. */
export const PRETRAIN_AUGMENTATION: AugmentationConfig = AugmentationConfig.parse({ kind: 'random-resized-crop' });
export const FINETUNE_AUGMENTATION: AugmentationConfig = AugmentationConfig.parse({ kind: 'pad-crop' });
export const NO_AUGMENTATION: AugmentationConfig = { kind: 'none' };

/** The number of images of a built-in split when `size` is left out. */
export function builtinSize(source: BuiltinSource): number {
  return source.size ?? BUILTIN_DEFAULT_SIZE[source.split];
}

/** Provenance of an opened dataset, for logs, run records and the UI. */
export const DatasetDescription = z.object({
  kind: z.enum(['builtin', 'cifar10', 'folder', 'tiny-imagenet']),
  split: DatasetSplit,
  /** A path, or 'generated' for the built-in set. */
  location: z.string(),
  /** One human sentence: what, how many, from where. */
  summary: z.string(),
});
export type DatasetDescription = z.infer<typeof DatasetDescription>;

/** A seeded share of the training set (paper Table XX): `fraction` of its images, drawn with `seed`. */
export const TrainingFraction = configObject({
  fraction: z
    .number({ error: 'trainFraction.fraction must be a number' })
    .gt(0, 'trainFraction.fraction must be above 0')
    .max(1, 'trainFraction.fraction is a share of the training set: at most 1')
    .default(1),
  seed: z
    .number({ error: 'trainFraction.seed must be a number' })
    .int('trainFraction.seed must be a whole number')
    .min(0, 'trainFraction.seed must be >= 0')
    .max(0xffffffff, 'trainFraction.seed must fit in 32 bits')
    .default(0),
});
export type TrainingFraction = z.infer<typeof TrainingFraction>;

/**
 * Extra generated training images (paper Table XVIII: EDM's CIFAR-10 and Tiny-ImageNet sets of Wang
 * et al. 2023) mixed into every batch: `ratio` of each batch comes from the .npz, the rest from the
 * dataset, whose size still sets the epoch. The .npz holds uint8 images [N, H, W, 3] ("image" or
 * "x") and integer labels [N] ("label" or "y"), as EDM's archives do.
 */
export const ExtraData = configObject({
  path: z
    .string({ error: 'extraData.path must be a file path' })
    .min(1, 'extraData.path: give the .npz file of generated images')
    .refine((file) => file.toLowerCase().endsWith('.npz'), 'extraData.path must name a .npz file'),
  /** Wang et al. 2023's default (unsup_fraction) is 0.7: 70% of each batch generated. */
  ratio: z
    .number({ error: 'extraData.ratio must be a number' })
    .gt(0, 'extraData.ratio must be above 0 (leave extraData out for none)')
    .lt(1, 'extraData.ratio must be below 1: some of each batch comes from the dataset')
    .default(0.7),
});
export type ExtraData = z.infer<typeof ExtraData>;
