import { z } from 'zod';
import { configObject } from './config-object';
import { checkEncoder, EncoderConfig, tfjsEncoderRefusal, type EncoderKind } from './encoder-config';

/**
 * The shape of a ViT masked autoencoder and of the classifier fine-tuned from its encoder
 * (spec section 2, paper Table XIV). Pure data: the engine builds parameters and forward passes
 * from it, checkpoints store it, the UI edits it.
 */

/** Per-channel mean/std applied inside the forward pass: (x - mean) / std, x in [0, 1] pixels. */
export const PixelNormalization = configObject({
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive('normalize.std values must be > 0')).min(1),
});
export type PixelNormalization = z.infer<typeof PixelNormalization>;

const positiveInt = (what: string) => z.number().int(`${what} must be an integer`).positive(`${what} must be > 0`);

const ModelConfigShape = configObject({
  imageSize: positiveInt('imageSize'),
  patchSize: positiveInt('patchSize'),
  channels: positiveInt('channels').default(3),
  width: positiveInt('width'),
  depth: positiveInt('depth'),
  heads: positiveInt('heads'),
  mlpRatio: z.number().positive('mlpRatio must be > 0').default(4),
  decoderWidth: positiveInt('decoderWidth'),
  decoderDepth: positiveInt('decoderDepth'),
  decoderHeads: positiveInt('decoderHeads'),
  /** Off (undefined) by default: the model sees [0, 1] pixels. */
  normalize: PixelNormalization.optional(),
  /** The encoder's architecture (encoder-config.ts); a config or checkpoint without it is a plain ViT. */
  encoder: EncoderConfig.default({ kind: 'vit' }),
});

export const ModelConfig = ModelConfigShape.superRefine((c, ctx) => {
  const fail = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (c.imageSize % c.patchSize !== 0) {
    fail('patchSize', `imageSize ${c.imageSize} is not divisible by patchSize ${c.patchSize}`);
  }
  if (c.patchSize * c.patchSize * c.channels < 2) {
    fail('patchSize', 'a patch must hold at least 2 values (per-patch normalised targets need a variance)');
  }
  if (c.width % c.heads !== 0) fail('heads', `width ${c.width} is not divisible by heads ${c.heads}`);
  if (c.decoderWidth % c.decoderHeads !== 0) {
    fail('decoderHeads', `decoderWidth ${c.decoderWidth} is not divisible by decoderHeads ${c.decoderHeads}`);
  }
  // 2-D sin-cos position embeddings split the width in four (sin/cos for each grid axis).
  if (c.width % 4 !== 0) fail('width', `width ${c.width} must be divisible by 4 (2-D sin-cos position embedding)`);
  if (c.decoderWidth % 4 !== 0) {
    fail('decoderWidth', `decoderWidth ${c.decoderWidth} must be divisible by 4 (2-D sin-cos position embedding)`);
  }
  if (!Number.isInteger(c.width * c.mlpRatio)) {
    fail('mlpRatio', `width * mlpRatio (${c.width} * ${c.mlpRatio}) must be an integer (the MLP hidden width)`);
  }
  if (!Number.isInteger(c.decoderWidth * c.mlpRatio)) {
    fail('mlpRatio', `decoderWidth * mlpRatio (${c.decoderWidth} * ${c.mlpRatio}) must be an integer`);
  }
  for (const [path, message] of checkEncoder(c)) fail(path, message);
  if (c.normalize) {
    if (c.normalize.mean.length !== c.channels) {
      fail('normalize', `normalize.mean has ${c.normalize.mean.length} values for ${c.channels} channels`);
    }
    if (c.normalize.std.length !== c.channels) {
      fail('normalize', `normalize.std has ${c.normalize.std.length} values for ${c.channels} channels`);
    }
  }
});
export type ModelConfig = z.infer<typeof ModelConfig>;
export type ModelConfigInput = z.input<typeof ModelConfig>;

/**
 * Presets: plain ViTs, then one block per encoder (encoder-config.ts). To add an encoder's presets,
 * add the names here and their specs to PRESETS below (with `encoder`); the New-run form, the model
 * summary and `mimir doctor --models` list whatever is here.
 */
export const MODEL_PRESETS = [
  'micro',
  'small-cpu',
  'vit-t',
  'vit-s',
  'vit-b',
  // ViT + ConvStem (Singh et al. 2023; paper Table VI)
  'convstem-micro',
  'convstem-vit-s',
  'convstem-vit-b',
  // ConvNeXt (SparK masked pre-training) and Swin (GreenMIM), PyTorch engine only (paper Table VI)
  'convnext-micro',
  'convnext-t',
  'swin-micro',
  'swin-b',
  // ConViT (d'Ascoli et al. 2021; paper Table XII) and CaiT (Touvron et al. 2021), timm's sizes
  'convit-micro',
  'convit-s',
  'cait-micro',
  'cait-s24',
] as const;
export const ModelPreset = z.enum(MODEL_PRESETS);
export type ModelPreset = z.infer<typeof ModelPreset>;

interface PresetSpec {
  description: string;
  width: number;
  depth: number;
  heads: number;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  defaultImageSize: number;
  patchSizeFor(imageSize: number): number;
  /** The encoder for a patch size (absent: a plain ViT). */
  encoder?(patchSize: number): EncoderConfig;
}

/** A ConvStem of log2(patchSize) stride-2 convolutions of base, 2 base, 4 base ... channels (the authors' base: 48). */
function convStem(base: number): (patchSize: number) => EncoderConfig {
  return (patchSize) => {
    const convs = Math.log2(patchSize);
    if (!Number.isInteger(convs) || convs < 1) {
      throw new Error(`A ConvStem needs a power-of-two patch size of 2 or more, got ${patchSize}`);
    }
    return {
      kind: 'convstem',
      stemChannels: Array.from({ length: convs }, (_, i) => base * 2 ** i),
      pretrainStem: true,
    };
  };
}

/** Paper Appendix B: patch 2 for 32 px (CIFAR-10), 4 for 64 px (Tiny-ImageNet), 16 for 224 px (ImageNet). */
function paperPatchSize(imageSize: number): number {
  const known: Record<number, number> = { 32: 2, 64: 4, 224: 16 };
  const patch = known[imageSize];
  if (patch !== undefined) return patch;
  if (imageSize % 16 === 0) return imageSize / 16; // a 16 x 16 grid, like CIFAR-10 and Tiny-ImageNet
  throw new Error(`No default patch size for ${imageSize} px images: give patchSize explicitly`);
}

/** A fixed grid of `grid` x `grid` patches, whatever the image size. */
function gridPatchSize(grid: number): (imageSize: number) => number {
  return (imageSize) => {
    if (imageSize % grid !== 0) {
      throw new Error(`${imageSize} px images do not split into a ${grid} x ${grid} grid: give patchSize explicitly`);
    }
    return imageSize / grid;
  };
}

const PAPER_DECODER = { decoderWidth: 128, decoderDepth: 2, decoderHeads: 16 };

const MICRO = {
  width: 32,
  depth: 2,
  heads: 2,
  decoderWidth: 32,
  decoderDepth: 1,
  decoderHeads: 2,
  defaultImageSize: 16,
  patchSizeFor: gridPatchSize(4),
};
const VIT_S = { width: 384, depth: 12, heads: 6, ...PAPER_DECODER };
const VIT_B = { width: 768, depth: 12, heads: 12, ...PAPER_DECODER };

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * A ConvNeXt preset (PyTorch engine): width its last stage's channels, depth all its blocks, one
 * decoder block of decoderWidth (SparK's coarsest), patch size the stem's stride.
 */
function convnextPreset(
  description: string,
  stages: { depths: number[]; dims: number[] },
  rest: { decoderWidth: number; defaultImageSize: number; stemStride: number },
): PresetSpec {
  const { depths, dims } = stages;
  const width = dims[dims.length - 1];
  if (width === undefined) throw new Error(`ConvNeXt preset "${description}" has no stages`);
  return {
    description,
    width,
    depth: sum(depths),
    heads: 1,
    decoderWidth: rest.decoderWidth,
    decoderDepth: 1,
    decoderHeads: 1,
    defaultImageSize: rest.defaultImageSize,
    patchSizeFor: () => rest.stemStride,
    encoder: () => ({ kind: 'convnext', depths: [...depths], dims: [...dims] }),
  };
}

/** A Swin preset (PyTorch engine): depth all its blocks, heads its first stage's. */
function swinPreset(
  description: string,
  stages: { width: number; depths: number[]; stageHeads: [number, ...number[]]; windowSize: number },
  rest: {
    decoderWidth: number;
    decoderDepth: number;
    decoderHeads: number;
    defaultImageSize: number;
    patchSize: number;
  },
): PresetSpec {
  const { width, depths, stageHeads, windowSize } = stages;
  const { patchSize, ...decoderAndImage } = rest;
  return {
    description,
    width,
    depth: sum(depths),
    heads: stageHeads[0],
    ...decoderAndImage,
    patchSizeFor: () => patchSize,
    encoder: () => ({ kind: 'swin', depths: [...depths], stageHeads: [...stageHeads], windowSize }),
  };
}

const PRESETS: Record<ModelPreset, PresetSpec> = {
  micro: {
    description: 'tests and demos: width 32, depth 2, 2 heads, decoder 32 x 1 x 2, a 4 x 4 patch grid',
    ...MICRO,
  },
  'small-cpu': {
    description: 'a quick demo on a laptop CPU: width 64, depth 4, 4 heads, decoder 64 x 1 x 4, an 8 x 8 patch grid',
    width: 64,
    depth: 4,
    heads: 4,
    decoderWidth: 64,
    decoderDepth: 1,
    decoderHeads: 4,
    defaultImageSize: 32,
    patchSizeFor: gridPatchSize(8),
  },
  'vit-t': {
    description: 'ViT-Tiny: width 192, depth 12, 3 heads (paper Table XIV)',
    width: 192,
    depth: 12,
    heads: 3,
    ...PAPER_DECODER,
    defaultImageSize: 32,
    patchSizeFor: paperPatchSize,
  },
  'vit-s': {
    description: 'ViT-Small: width 384, depth 12, 6 heads (paper Table XIV)',
    ...VIT_S,
    defaultImageSize: 32,
    patchSizeFor: paperPatchSize,
  },
  'vit-b': {
    description: 'ViT-Base: width 768, depth 12, 12 heads (paper Table XIV)',
    ...VIT_B,
    defaultImageSize: 224,
    patchSizeFor: paperPatchSize,
  },
  'convstem-micro': {
    description: 'the micro ViT with a ConvStem (stride-2 3x3 convolutions of 8, 16 ... channels) for tests and demos',
    ...MICRO,
    encoder: convStem(8),
  },
  'convstem-vit-s': {
    description: 'ViT-Small + ConvStem: convolutions of 48, 96, 192, 384 channels at patch 16 (paper Table VI)',
    ...VIT_S,
    defaultImageSize: 224,
    patchSizeFor: paperPatchSize,
    encoder: convStem(48),
  },
  'convstem-vit-b': {
    description: 'ViT-Base + ConvStem: convolutions of 48, 96, 192, 384 channels at patch 16 (paper Table VI)',
    ...VIT_B,
    defaultImageSize: 224,
    patchSizeFor: paperPatchSize,
    encoder: convStem(48),
  },
  // decoderWidth: SparK's coarsest decoder width (halved per stage) / GreenMIM's MAE decoder.
  'convnext-micro': convnextPreset(
    'ConvNeXt for tests and demos: 4 stages of 1 block, 16, 32, 64, 128 channels, stem stride 1 (8 px mask cells at 32 px); PyTorch engine',
    { depths: [1, 1, 1, 1], dims: [16, 32, 64, 128] },
    { decoderWidth: 32, defaultImageSize: 32, stemStride: 1 },
  ),
  'convnext-t': convnextPreset(
    "ConvNeXt-T (timm's convnext_tiny): blocks 3, 3, 9, 3, channels 96 to 768, stem stride 4; PyTorch engine",
    { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
    { decoderWidth: 512, defaultImageSize: 224, stemStride: 4 },
  ),
  'swin-micro': swinPreset(
    'Swin for tests and demos: patch 2, width 16, 3 stages of 2 blocks with 1, 2, 4 heads, window 4; PyTorch engine',
    { width: 16, depths: [2, 2, 2], stageHeads: [1, 2, 4], windowSize: 4 },
    { decoderWidth: 32, decoderDepth: 1, decoderHeads: 2, defaultImageSize: 32, patchSize: 2 },
  ),
  'swin-b': swinPreset(
    "Swin-B (timm's swin_base_patch4_window7_224): patch 4, width 128, blocks 2, 2, 18, 2, window 7; PyTorch engine",
    { width: 128, depths: [2, 2, 18, 2], stageHeads: [4, 8, 16, 32], windowSize: 7 },
    { ...PAPER_DECODER, defaultImageSize: 224, patchSize: 4 },
  ),
  'convit-micro': {
    description:
      'the micro model as a ConViT (4 heads, GPSA in block 1, the cls token joining before block 2) for tests and demos',
    ...MICRO,
    heads: 4,
    encoder: () => ({ kind: 'convit', localUpToLayer: 1, localityStrength: 1, qkvBias: false }),
  },
  'convit-s': {
    description:
      "ConViT-S (timm's convit_small): width 432, depth 12, 9 heads, GPSA in the first 10 blocks (paper Table XII)",
    width: 432,
    depth: 12,
    heads: 9,
    ...PAPER_DECODER,
    defaultImageSize: 224,
    patchSizeFor: paperPatchSize,
    encoder: () => ({ kind: 'convit', localUpToLayer: 10, localityStrength: 1, qkvBias: false }),
  },
  'cait-micro': {
    description:
      'the micro model as a CaiT (4 heads, talking heads, LayerScale, 2 class-attention blocks) for tests and demos',
    ...MICRO,
    heads: 4,
    encoder: () => ({ kind: 'cait', classAttentionBlocks: 2, layerScaleInit: 1e-4, qkvBias: true }),
  },
  'cait-s24': {
    description:
      "CaiT-S24 (timm's cait_s24_224): width 384, 24 talking-heads blocks of 8 heads, 2 class-attention blocks",
    width: 384,
    depth: 24,
    heads: 8,
    ...PAPER_DECODER,
    defaultImageSize: 224,
    patchSizeFor: paperPatchSize,
    encoder: () => ({ kind: 'cait', classAttentionBlocks: 2, layerScaleInit: 1e-5, qkvBias: true }),
  },
};

export function describePreset(preset: ModelPreset): string {
  return PRESETS[preset].description;
}

/**
 * A validated config from a preset name and an image size (the preset's own size by default);
 * `overrides` replace any field (e.g. an explicit patchSize or a normalisation) before validation.
 * Throws a ZodError or an Error whose message names the problem.
 */
export function modelConfigFromPreset(
  preset: ModelPreset,
  imageSize?: number,
  overrides: Partial<ModelConfigInput> = {},
): ModelConfig {
  const spec = PRESETS[ModelPreset.parse(preset)];
  const size = imageSize ?? spec.defaultImageSize;
  const patchSize = overrides.patchSize ?? spec.patchSizeFor(size);
  return ModelConfig.parse({
    imageSize: size,
    patchSize,
    channels: 3,
    width: spec.width,
    depth: spec.depth,
    heads: spec.heads,
    mlpRatio: 4,
    decoderWidth: spec.decoderWidth,
    decoderDepth: spec.decoderDepth,
    decoderHeads: spec.decoderHeads,
    ...(spec.encoder ? { encoder: spec.encoder(patchSize) } : {}),
    ...overrides,
  });
}

/** Patches per side of the grid. */
export function gridSize(config: ModelConfig): number {
  return config.imageSize / config.patchSize;
}

/** Patches per image (L). */
export function numPatches(config: ModelConfig): number {
  return gridSize(config) ** 2;
}

/** Values per patch (p * p * C): the patch-embedding input and the decoder's output per patch. */
export function patchDim(config: ModelConfig): number {
  return config.patchSize * config.patchSize * config.channels;
}

/** Number of visible patches for a mask ratio, as MAE computes it: int(L * (1 - ratio)). */
export function numVisiblePatches(config: ModelConfig, maskRatio: number): number {
  return Math.floor(numPatches(config) * (1 - maskRatio));
}

/**
 * The MAE decoder's size as one pre-training setting (paper Table XIX: depth 2, 4, 6 and width 128,
 * 256, 512), over whatever model the run uses, a preset included; a field left out keeps the
 * model's own. Only pre-training uses the decoder.
 */
export const DecoderSize = configObject({
  depth: positiveInt('decoder.depth').optional(),
  width: positiveInt('decoder.width').optional(),
  /** The width must split into this many heads (and be divisible by 4, for the position embedding). */
  heads: positiveInt('decoder.heads').optional(),
});
export type DecoderSize = z.infer<typeof DecoderSize>;

const DECODER_FIELDS = { decoderDepth: 'decoder.depth', decoderWidth: 'decoder.width', decoderHeads: 'decoder.heads' };

/** `model` with `decoder`'s fields in place of its own; throws an Error naming the decoder field that does not fit. */
export function withDecoder(model: ModelConfig, decoder: DecoderSize | undefined): ModelConfig {
  if (!decoder) return model;
  const parsed = ModelConfig.safeParse({
    ...model,
    decoderDepth: decoder.depth ?? model.decoderDepth,
    decoderWidth: decoder.width ?? model.decoderWidth,
    decoderHeads: decoder.heads ?? model.decoderHeads,
  });
  if (parsed.success) return parsed.data;
  const why = parsed.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const field = DECODER_FIELDS[key as keyof typeof DECODER_FIELDS] ?? `model.${key}`;
    return `${field}: ${issue.message}`;
  });
  throw new Error(
    `The decoder setting does not fit the model (${why.join('; ')}); change decoder.width or decoder.heads`,
  );
}

/** The encoder depth of a run's model, a preset's or a full config's. */
export function modelDepth(model: ModelPreset | ModelConfig): number {
  return typeof model === 'string' ? PRESETS[model].depth : model.depth;
}

/** The encoder kind of a run's model, a preset's or a full config's. */
export function modelEncoderKind(model: ModelPreset | ModelConfig): EncoderKind {
  if (typeof model !== 'string') return model.encoder.kind;
  const spec = PRESETS[model];
  return spec.encoder ? spec.encoder(spec.patchSizeFor(spec.defaultImageSize)).kind : 'vit';
}

/**
 * Whether the engine a run names can train its model (absent engine: tfjs); an issue on `model`
 * naming the PyTorch engine when the encoder is torch-only, else none.
 */
export function checkModelEngine(
  model: ModelPreset | ModelConfig,
  engine: { name: 'tfjs' | 'torch' } | undefined,
  ctx: z.RefinementCtx,
  path: (string | number)[],
): void {
  if (engine?.name === 'torch') return;
  const kind = modelEncoderKind(model);
  const refusal = tfjsEncoderRefusal({ kind } as EncoderConfig);
  if (refusal) ctx.addIssue({ code: 'custom', path, message: refusal });
}
