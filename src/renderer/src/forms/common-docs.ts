import {
  describePreset,
  MODEL_PRESETS,
  ModelConfig,
  modelConfigFromPreset,
  type ModelPreset,
} from '@shared/model-config';
import { formatModelSummary } from '@shared/model-summary';
import { docKey, type FieldDoc, type FormSpec } from './form-spec';
import { getAt, type FieldPath } from './paths';

/** Docs of the fields several run kinds share: the dataset source, augmentation and model. */

export const DATASET_DOCS: Record<string, FieldDoc> = {
  dataset: { label: 'Dataset' },
  'dataset.kind': { label: 'Source' },
  'dataset.split': { label: 'Split' },
  'dataset.size': {
    label: 'Images',
    help: 'Number of images in the split.',
    placeholder: 'default: 5,000 (train) / 1,000 (test)',
  },
  'dataset.seed': { label: 'Dataset seed' },
  'dataset.classes': { label: 'Classes' },
  'dataset.imageSize': { label: 'Image size (px)' },
  'dataset.root': { label: 'Folder or archive', placeholder: '~/.mimir/datasets/…' },
  'dataset.testFraction': {
    label: 'Test fraction',
    help: 'Held out as the test split when the folder has no train/ and val/ (or test/) sub-folders.',
  },
  'dataset.onBadImage': { label: 'On an unreadable image' },
};

/** The engine choice of pre-training and fine-tuning runs (shared/engine-choice.ts). */
export const ENGINE_DOCS: Record<string, FieldDoc> = {
  engine: {
    label: 'Engine',
    help: 'Empty or TensorFlow.js: this machine’s engine process. PyTorch: the PyTorch engine (python3 with torch; see mimir doctor), on CUDA GPUs or CPU processes.',
  },
  'engine.name': { label: 'Engine' },
  'engine.nproc': {
    label: 'Processes',
    help: 'One per GPU, or CPU processes (gloo); the batch is split between them.',
  },
  'engine.device': { label: 'Device', help: 'auto: CUDA where torch sees a GPU, else the CPU.' },
  'engine.precision': {
    label: 'Precision',
    help: 'On CUDA: auto is bf16 autocast where the GPU supports it, else fp16 autocast with loss scaling (GradScaler); fp32 turns autocast off. The CPU always runs fp32.',
  },
};

/**
 * The AdamW optimizer of pre-training and fine-tuning, under the shared warm-up + cosine schedule
 * (engine/train/schedule.ts). Each form adds its base learning rate (and fine-tuning its layer decay).
 */
export const OPTIMIZER_DOCS: Record<string, FieldDoc> = {
  optimizer: { label: 'Optimizer (AdamW)' },
  'optimizer.minLr': { label: 'Minimum learning rate', help: 'The end of the cosine schedule.' },
  'optimizer.weightDecay': { label: 'Weight decay' },
  'optimizer.beta1': { label: 'β₁' },
  'optimizer.beta2': { label: 'β₂' },
  'optimizer.warmupEpochs': { label: 'Warm-up epochs', help: 'Linear warm-up before the cosine decay.' },
  'optimizer.clipGrad': {
    label: 'Clip gradient norm',
    help: 'Clip the global gradient norm to this value; empty: no clipping.',
    placeholder: 'none',
  },
};

/** The seeded share of the training set a pre-training or fine-tuning uses (Table XX). */
export const TRAIN_FRACTION_DOCS: Record<string, FieldDoc> = {
  trainFraction: { label: 'Share of the training set' },
  'trainFraction.fraction': {
    label: 'Fraction',
    help: 'Train on this share of the training split (1: all of it), drawn with the seed below.',
  },
  'trainFraction.seed': { label: 'Share seed', help: 'Which images the share holds; the same seed, the same images.' },
  extraData: {
    label: 'Extra generated data (Table XVIII)',
    help: 'Mix generated images (e.g. EDM’s, Wang et al. 2023) into every batch; off: the dataset alone.',
  },
  'extraData.path': {
    label: '.npz file',
    help: 'uint8 images [N, H, W, 3] as "image" or "x" and labels [N] as "label" or "y"; the dataset’s image size and classes.',
    placeholder: '/data/cifar10-edm-1m.npz',
  },
  'extraData.ratio': {
    label: 'Share of each batch',
    help: 'Of every batch this share is generated (Wang et al.: 0.7), the rest from the dataset, which sets the epoch.',
  },
};

export const AUGMENTATION_DOCS: Record<string, FieldDoc> = {
  augmentation: { label: 'Augmentation' },
  'augmentation.kind': { label: 'Kind' },
  'augmentation.scale': { label: 'Crop area [min, max]', help: 'Random area fraction of the crop.' },
  'augmentation.ratio': { label: 'Aspect ratio [min, max]', help: 'Log-uniform aspect ratio of the crop.' },
  'augmentation.flip': { label: 'Horizontal flip' },
  'augmentation.padding': { label: 'Padding (px)' },
};

/** Docs of the training runs (pre-training, fine-tuning): data, engine, augmentation and optimizer. */
export const TRAINING_RUN_DOCS: Record<string, FieldDoc> = {
  ...DATASET_DOCS,
  ...TRAIN_FRACTION_DOCS,
  ...ENGINE_DOCS,
  ...AUGMENTATION_DOCS,
  ...OPTIMIZER_DOCS,
};

export const MODEL_DOCS: Record<string, FieldDoc> = {
  model: { label: 'Model', help: 'A preset sized for the dataset’s images, or a full ViT-MAE configuration.' },
  'model.imageSize': { label: 'Image size (px)' },
  'model.patchSize': { label: 'Patch size (px)' },
  'model.channels': { label: 'Channels' },
  'model.width': { label: 'Encoder width' },
  'model.depth': { label: 'Encoder depth' },
  'model.heads': { label: 'Encoder heads' },
  'model.mlpRatio': { label: 'MLP ratio' },
  'model.decoderWidth': { label: 'Decoder width' },
  'model.decoderDepth': { label: 'Decoder depth' },
  'model.decoderHeads': { label: 'Decoder heads' },
  'model.normalize': {
    label: 'Normalise pixels',
    help: 'Per-channel (x − mean) / std inside the model; off: the model sees [0, 1] pixels.',
  },
  'model.normalize.mean': { label: 'Mean per channel', placeholder: '0.4914, 0.4822, 0.4465' },
  'model.normalize.std': { label: 'Std per channel', placeholder: '0.2470, 0.2435, 0.2616' },
  'model.encoder': { label: 'Encoder architecture' },
  'model.encoder.localUpToLayer': {
    label: 'GPSA blocks',
    help: 'ConViT: gated positional self-attention in this many first blocks, then the class token (timm: 10).',
  },
  'model.encoder.localityStrength': { label: 'Locality strength', help: 'ConViT: initial locality of GPSA (timm: 1).' },
  'model.encoder.classAttentionBlocks': {
    label: 'Class-attention blocks',
    help: 'CaiT: blocks after the self-attention stage (timm: 2).',
  },
  'model.encoder.layerScaleInit': { label: 'LayerScale init', help: 'CaiT: LayerScale’s initial value (1e-5).' },
  'model.encoder.qkvBias': {
    label: 'QKV bias',
    help: 'ConViT / CaiT: biases on the query, key and value projections (timm: off for convit_small, on for cait_s24_224).',
  },
  'model.encoder.depths': { label: 'Stage depths', help: 'ConvNeXt / Swin (PyTorch engine only): blocks per stage.' },
  'model.encoder.dims': { label: 'Stage widths', help: 'ConvNeXt (PyTorch engine only): channels per stage.' },
  'model.encoder.stageHeads': { label: 'Stage heads', help: 'Swin (PyTorch engine only): attention heads per stage.' },
  'model.encoder.windowSize': { label: 'Window size', help: 'Swin (PyTorch engine only): attention window side.' },
  'model.encoder.kind': {
    label: 'Encoder',
    help: 'vit: linear patch embedding. convstem: a convolutional stem in its place (Singh et al.; paper Table VI). convit: gated positional self-attention first (d’Ascoli et al.; Table XII). cait: LayerScale, talking heads, class attention (Touvron et al.).',
  },
  'model.encoder.stemChannels': {
    label: 'Stem channels',
    help: 'One width per stride-2 3×3 convolution: log2 of the patch size of them (the authors’ ViT-S: 48, 96, 192, 384).',
    placeholder: '48, 96, 192, 384',
  },
  'model.encoder.pretrainStem': {
    label: 'Pre-train the stem',
    help: 'Table VI: on, MIMIR trains the stem with the encoder; off, the stem keeps its initial weights until fine-tuning.',
  },
};

/**
 * Help for the model field: a preset's description, and for a preset or a custom model its size
 * (parameters, FLOPs per image) at the dataset's image size.
 */
export function presetHelp(model: unknown, config?: unknown): string | null {
  const resolved = resolvedModel(model, config);
  if (!resolved) return null;
  const summary = formatModelSummary(resolved);
  return typeof model === 'string' ? `${describePreset(model as ModelPreset)}. ${summary}` : summary;
}

/**
 * The model a form's `model` value means: a preset at the dataset's image size (its own size where
 * it does not fit that one), or a valid custom config; null otherwise.
 */
export function resolvedModel(model: unknown, config?: unknown): ModelConfig | null {
  const imageSize = getAt(config, ['dataset', 'imageSize']);
  const size = typeof imageSize === 'number' ? imageSize : undefined;
  if (typeof model === 'string' && (MODEL_PRESETS as readonly string[]).includes(model)) {
    const preset = model as ModelPreset;
    try {
      return modelConfigFromPreset(preset, size);
    } catch {
      return modelConfigFromPreset(preset);
    }
  }
  const custom = ModelConfig.safeParse(model);
  return custom.success ? custom.data : null;
}

/**
 * Switching the model at `modelPath` from a preset to a custom config starts from what the preset means
 * for the dataset's image size, so the user edits the model they had rather than a blank one.
 */
export function customModelFrom(config: unknown, modelPath: FieldPath): Record<string, unknown> | null {
  const model = getAt(config, modelPath);
  const imageSize = getAt(config, ['dataset', 'imageSize']);
  if (typeof model !== 'string' || !(MODEL_PRESETS as readonly string[]).includes(model)) return null;
  try {
    return { ...modelConfigFromPreset(model as ModelPreset, typeof imageSize === 'number' ? imageSize : undefined) };
  } catch {
    try {
      return { ...modelConfigFromPreset(model as ModelPreset) };
    } catch {
      return null;
    }
  }
}

/** A form's hooks for its model field at doc key `key`: the value's help, and a custom model from the preset. */
export function modelFieldHooks(key: string): Pick<FormSpec, 'valueHelp' | 'objectOptionStart'> {
  return {
    valueHelp: (path, value, config) => (docKey(path) === key ? presetHelp(value, config) : null),
    objectOptionStart: (path, config) => (docKey(path) === key ? customModelFrom(config, path) : null),
  };
}
