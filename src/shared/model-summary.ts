import type { EncoderKind } from './encoder-config';
import {
  gridSize,
  MODEL_PRESETS,
  modelConfigFromPreset,
  patchDim,
  type ModelConfig,
  type ModelPreset,
} from './model-config';

/**
 * A model's size as a researcher compares architectures: parameters of the classifier (encoder +
 * head) and FLOPs of one image's forward pass, counted as fvcore and timm's tables count them (one
 * multiply-add = one FLOP; matmuls, convolutions and attention products only, so ViT-S/16 at 224 px
 * is 4.6 GFLOPs). Analytic, with no engine, so the form and the CLI show it; a test checks the
 * parameter count against the tfjs engine's parameter specs for every preset.
 *
 * Each encoder kind supplies its own count (ENCODER_SIZES); null: not counted yet (the summary then says so).
 */
export interface ModelSummary {
  /** Classifier parameters (encoder and a `classes`-way head). */
  parameters: number;
  /** Multiply-adds of one image's classifier forward pass. */
  flopsPerImage: number;
  classes: number;
}

interface EncoderSize {
  /** The backbone's parameters (what fine-tuning copies) and the head's, for `classes` outputs. */
  parameters(c: ModelConfig, classes: number): number;
  flopsPerImage(c: ModelConfig, classes: number): number;
}

/** One pre-norm block: LayerNorms, qkv, projection, MLP. */
function blockParameters(width: number, mlpRatio: number): number {
  const hidden = Math.round(width * mlpRatio);
  return 4 * width + (3 * width * width + 3 * width) + (width * width + width) + (2 * width * hidden + hidden + width);
}

/** Multiply-adds of one block over `tokens` tokens: qkv, q k^T, attention x v, projection, MLP. */
function blockFlops(width: number, mlpRatio: number, tokens: number): number {
  const hidden = Math.round(width * mlpRatio);
  return tokens * (4 * width * width + 2 * width * hidden) + 2 * tokens * tokens * width;
}

/** Blocks, cls token and the avg-pool head (fc_norm + linear) around an embedding of `embedParams` / `embedFlops`. */
function vitSize(c: ModelConfig, classes: number, embedParams: number): number {
  return (
    c.width + embedParams + c.depth * blockParameters(c.width, c.mlpRatio) + 2 * c.width + c.width * classes + classes
  );
}

function vitFlops(c: ModelConfig, classes: number, embedFlops: number): number {
  const tokens = gridSize(c) ** 2 + 1;
  return embedFlops + c.depth * blockFlops(c.width, c.mlpRatio, tokens) + c.width * classes;
}

/** The ConvStem's convolutions: [in, out, output side, kernel] each, the 1x1 projection last. */
function stemConvs(c: ModelConfig): [number, number, number, number][] {
  if (c.encoder.kind !== 'convstem') return [];
  const convs: [number, number, number, number][] = [];
  let channels = c.channels;
  let side = c.imageSize;
  for (const out of c.encoder.stemChannels) {
    side = Math.ceil(side / 2);
    convs.push([channels, out, side, 3]);
    channels = out;
  }
  convs.push([channels, c.width, side, 1]);
  return convs;
}

/** The MLP of a block: fc1 and fc2 with biases. */
function mlpParameters(width: number, mlpRatio: number): number {
  const hidden = Math.round(width * mlpRatio);
  return 2 * width * hidden + hidden + width;
}

/** timm's token layout (ConViT, CaiT): cls token, learned pos_embed [L, D], linear patch embedding, norm + head. */
function tokenEncoderShell(c: ModelConfig, classes: number): number {
  const l = gridSize(c) ** 2;
  return c.width + l * c.width + patchDim(c) * c.width + c.width + 2 * c.width + c.width * classes + classes;
}

/** Linear layers without bias when qkvBias is off (timm's qkv_bias). */
const qkvBiases = (c: ModelConfig, outputs: number): number =>
  (c.encoder.kind === 'convit' || c.encoder.kind === 'cait') && c.encoder.qkvBias ? outputs : 0;

function convitParameters(c: ModelConfig, classes: number): number {
  if (c.encoder.kind !== 'convit') return 0;
  const d = c.width;
  const h = c.heads;
  const local = c.encoder.localUpToLayer;
  const gpsa = 4 * d + 3 * d * d + qkvBiases(c, 3 * d) + d * d + d + 3 * h + h + h + mlpParameters(d, c.mlpRatio);
  const mhsa = 4 * d + 3 * d * d + qkvBiases(c, 3 * d) + d * d + d + mlpParameters(d, c.mlpRatio);
  return tokenEncoderShell(c, classes) + local * gpsa + (c.depth - local) * mhsa;
}

/** GPSA blocks over the L patch tokens (plus the positional scores, L^2 x 3 per head), MHSA blocks over L + 1. */
function convitFlops(c: ModelConfig, classes: number): number {
  if (c.encoder.kind !== 'convit') return 0;
  const l = gridSize(c) ** 2;
  const local = c.encoder.localUpToLayer;
  const gpsa = blockFlops(c.width, c.mlpRatio, l) + 3 * l * l * c.heads;
  return (
    l * patchDim(c) * c.width +
    local * gpsa +
    (c.depth - local) * blockFlops(c.width, c.mlpRatio, l + 1) +
    c.width * classes
  );
}

function caitParameters(c: ModelConfig, classes: number): number {
  if (c.encoder.kind !== 'cait') return 0;
  const d = c.width;
  const h = c.heads;
  const selfAttention =
    4 * d + 3 * d * d + qkvBiases(c, 3 * d) + d * d + d + 2 * (h * h + h) + mlpParameters(d, c.mlpRatio) + 2 * d;
  const classAttention = 4 * d + 3 * d * d + qkvBiases(c, 3 * d) + d * d + d + mlpParameters(d, c.mlpRatio) + 2 * d;
  return tokenEncoderShell(c, classes) + c.depth * selfAttention + c.encoder.classAttentionBlocks * classAttention;
}

/** Talking-heads blocks over the L patch tokens (two head mixes of L^2 x heads^2), class attention on the cls token. */
function caitFlops(c: ModelConfig, classes: number): number {
  if (c.encoder.kind !== 'cait') return 0;
  const l = gridSize(c) ** 2;
  const d = c.width;
  const hidden = Math.round(d * c.mlpRatio);
  const selfAttention = blockFlops(d, c.mlpRatio, l) + 2 * l * l * c.heads * c.heads;
  const classAttention = d * d + 2 * (l + 1) * d * d + 2 * (l + 1) * d + d * d + 2 * d * hidden;
  return l * patchDim(c) * d + c.depth * selfAttention + c.encoder.classAttentionBlocks * classAttention + d * classes;
}

const ENCODER_SIZES: Record<EncoderKind, EncoderSize | null> = {
  vit: {
    parameters: (c, classes) => vitSize(c, classes, patchDim(c) * c.width + c.width),
    flopsPerImage: (c, classes) => vitFlops(c, classes, gridSize(c) ** 2 * patchDim(c) * c.width),
  },
  convstem: {
    // Each 3x3 convolution has a bias and a LayerNorm over its channels; the 1x1 projection a bias.
    parameters: (c, classes) =>
      vitSize(
        c,
        classes,
        stemConvs(c).reduce((n, [cin, cout, , k]) => n + k * k * cin * cout + cout + (k === 3 ? 2 * cout : 0), 0),
      ),
    flopsPerImage: (c, classes) =>
      vitFlops(
        c,
        classes,
        stemConvs(c).reduce((n, [cin, cout, side, k]) => n + side * side * k * k * cin * cout, 0),
      ),
  },
  convit: { parameters: convitParameters, flopsPerImage: convitFlops },
  cait: { parameters: caitParameters, flopsPerImage: caitFlops },
  convnext: {
    parameters: (c, classes) => convnextSize(c, classes).parameters,
    flopsPerImage: (c, classes) => convnextSize(c, classes).flops,
  },
  swin: {
    parameters: (c, classes) => swinSize(c, classes).parameters,
    flopsPerImage: (c, classes) => swinSize(c, classes).flops,
  },
};

/**
 * timm's ConvNeXt: a patchSize x patchSize stem conv + LayerNorm; per stage a LayerNorm + 2x2 stride-2
 * conv (from stage 2), then blocks of a 7x7 depthwise conv, LayerNorm, MLP 4x and a layer scale; the
 * head's LayerNorm and linear.
 */
function convnextSize(c: ModelConfig, classes: number): { parameters: number; flops: number } {
  if (c.encoder.kind !== 'convnext') throw new Error('not a ConvNeXt');
  const { depths, dims } = c.encoder;
  const first = dims[0] ?? 0;
  let side = c.imageSize / c.patchSize;
  let parameters = c.channels * first * c.patchSize ** 2 + 3 * first;
  let flops = side * side * c.channels * first * c.patchSize ** 2;
  dims.forEach((d, i) => {
    if (i > 0) {
      const prev = dims[i - 1] ?? 0;
      side /= 2;
      parameters += 2 * prev + 4 * prev * d + d;
      flops += side * side * 4 * prev * d;
    }
    parameters += (depths[i] ?? 0) * (8 * d * d + 58 * d);
    flops += (depths[i] ?? 0) * side * side * (49 * d + 8 * d * d);
  });
  const last = dims.at(-1) ?? 0;
  return { parameters: parameters + 2 * last + last * classes + classes, flops: flops + last * classes };
}

/**
 * timm's Swin: a patch embedding (conv + LayerNorm); per stage a patch merging (LayerNorm over 4C, a
 * linear 4C -> 2C without bias, from stage 2), then blocks with window attention (relative position
 * table of (2w - 1)^2 x heads, the window shrunk to a smaller map) and MLP 4x; a final LayerNorm and
 * the linear head.
 */
function swinSize(c: ModelConfig, classes: number): { parameters: number; flops: number } {
  if (c.encoder.kind !== 'swin') throw new Error('not a Swin');
  const { depths, stageHeads, windowSize } = c.encoder;
  let side = c.imageSize / c.patchSize;
  let parameters = c.channels * c.width * c.patchSize ** 2 + 3 * c.width;
  let flops = side * side * c.channels * c.width * c.patchSize ** 2;
  let d = c.width;
  depths.forEach((depth, i) => {
    if (i > 0) {
      side /= 2;
      parameters += 8 * d + 8 * d * d;
      flops += side * side * 8 * d * d;
      d *= 2;
    }
    const w = Math.min(windowSize, side);
    const tokens = side * side;
    parameters += depth * (12 * d * d + 13 * d + (2 * w - 1) ** 2 * (stageHeads[i] ?? 0));
    flops += depth * (12 * tokens * d * d + 2 * tokens * w * w * d);
  });
  return { parameters: parameters + 2 * d + d * classes + classes, flops: flops + d * classes };
}

/** The summary of a classifier with `classes` outputs (1000 by default, as model tables quote), or null when the encoder's size is not counted. */
export function modelSummary(c: ModelConfig, classes = 1000): ModelSummary | null {
  const size = ENCODER_SIZES[c.encoder.kind];
  if (!size) return null;
  return { parameters: size.parameters(c, classes), flopsPerImage: size.flopsPerImage(c, classes), classes };
}

/** [number, SI prefix]: [21.7, 'M']. */
function scaled(value: number): [string, string] {
  for (const [unit, size] of [
    ['G', 1e9],
    ['M', 1e6],
    ['k', 1e3],
  ] as const) {
    if (value >= size) return [(value / size).toFixed(value >= 10 * size ? 1 : 2), unit];
  }
  return [String(value), ''];
}

/** "21.7 M parameters, 4.61 GFLOPs per 224 px image (1000 classes)". */
export function formatModelSummary(c: ModelConfig, classes = 1000): string {
  const s = modelSummary(c, classes);
  if (!s) return `parameters and FLOPs not counted for the ${c.encoder.kind} encoder yet`;
  const [params, pUnit] = scaled(s.parameters);
  const [flops, fUnit] = scaled(s.flopsPerImage);
  return `${params}${pUnit ? ` ${pUnit}` : ''} parameters, ${flops} ${fUnit}FLOPs per ${c.imageSize} px image (${classes} classes)`;
}

/** One row per preset at its default image size, for `mimir doctor --models`. */
export function presetSummaries(): { preset: ModelPreset; config: ModelConfig; summary: ModelSummary | null }[] {
  return MODEL_PRESETS.map((preset) => {
    const config = modelConfigFromPreset(preset);
    return { preset, config, summary: modelSummary(config) };
  });
}
