import { z } from 'zod';
import { configObject } from './config-object';

/**
 * Which encoder a model uses (issue 17 and 18): a tagged union on `kind`, a field of ModelConfig.
 * A config or checkpoint without the field is a plain ViT. Shape rules that involve the rest of the
 * model (e.g. ConViT's localUpToLayer < depth) are checked by `checkEncoder`, which ModelConfig
 * runs; each engine maps the kind to its implementation in one place (src/engine/model/encoders.ts,
 * python/mimir_torch/encoders/__init__.py).
 */

const positiveInt = (what: string) => z.number().int(`${what} must be an integer`).positive(`${what} must be > 0`);
const positiveInts = (what: string) => z.array(positiveInt(what)).min(1, `${what} needs at least one value`);

/** The plain ViT: a linear patch embedding (a p x p, stride-p convolution). */
export const VitEncoder = configObject({ kind: z.literal('vit') });

/**
 * ViT + ConvStem (Singh et al. 2023): stride-2 3x3 convolutions, each followed by LayerNorm over the
 * channels and GELU, then a 1x1 projection to the width, in place of the patch embedding (the
 * authors' MIMIR code, models/mae_vit.py ConvBlock, uses LayerNorm; timm's ConvStem BatchNorm). The
 * stem's total stride is the patch size, so there are log2(patchSize) convolutions.
 */
export const ConvStemEncoder = configObject({
  kind: z.literal('convstem'),
  /** Output channels of each stride-2 convolution, first to last (the authors' ViT-S: 48, 96, 192, 384). */
  stemChannels: positiveInts('encoder.stemChannels'),
  /**
   * Paper Table VI: true, MIMIR pre-training trains the stem with the rest of the encoder; false, the
   * stem keeps its initial weights during pre-training and is trained only in fine-tuning.
   */
  pretrainStem: z.boolean().default(true),
});

/** ConViT (d'Ascoli et al. 2021): gated positional self-attention in the first blocks. */
export const ConvitEncoder = configObject({
  kind: z.literal('convit'),
  /** GPSA in blocks 0 .. localUpToLayer - 1, then the class token and plain self-attention (timm: 10). */
  localUpToLayer: positiveInt('encoder.localUpToLayer'),
  /** Initial locality strength of the positional attention (timm: 1). */
  localityStrength: z.number().positive('encoder.localityStrength must be > 0').default(1),
  /** Biases on the query/key/value projections (timm's qkv_bias; convit_small: false). */
  qkvBias: z.boolean().default(false),
});

/** CaiT (Touvron et al. 2021): LayerScale, talking-heads attention, class-attention blocks at the end. */
export const CaitEncoder = configObject({
  kind: z.literal('cait'),
  /** Class-attention blocks after the self-attention stage (timm: depth_token_only = 2). */
  classAttentionBlocks: positiveInt('encoder.classAttentionBlocks').default(2),
  /** LayerScale's initial value (timm's cait_s24_224: 1e-5). */
  layerScaleInit: z.number().positive('encoder.layerScaleInit must be > 0').default(1e-5),
  /** Biases on the query/key/value projections (timm's qkv_bias; cait_s24_224: true). */
  qkvBias: z.boolean().default(true),
});

/** ConvNeXt (issue 18; PyTorch engine only): stage depths and widths (timm convnext_tiny: 3,3,9,3 and 96,192,384,768). */
export const ConvnextEncoder = configObject({
  kind: z.literal('convnext'),
  depths: positiveInts('encoder.depths'),
  dims: positiveInts('encoder.dims'),
});

/** Swin (issue 18; PyTorch engine only): stage depths, heads per stage, window size. */
export const SwinEncoder = configObject({
  kind: z.literal('swin'),
  depths: positiveInts('encoder.depths'),
  stageHeads: positiveInts('encoder.stageHeads'),
  windowSize: positiveInt('encoder.windowSize').default(7),
});

export const EncoderConfig = z.discriminatedUnion(
  'kind',
  [VitEncoder, ConvStemEncoder, ConvitEncoder, CaitEncoder, ConvnextEncoder, SwinEncoder],
  { error: "encoder.kind must be one of 'vit', 'convstem', 'convit', 'cait', 'convnext', 'swin'" },
);
export type EncoderConfig = z.infer<typeof EncoderConfig>;
export type EncoderKind = EncoderConfig['kind'];

/** Encoders that only the PyTorch engine implements. */
export const TORCH_ONLY_ENCODERS: readonly EncoderKind[] = ['convnext', 'swin'];

/** The parts of ModelConfig an encoder's shape rules read. */
interface ModelShape {
  imageSize: number;
  patchSize: number;
  depth: number;
  width: number;
  encoder: EncoderConfig;
}

/** Problems of `encoder` within the model, as [field, message] pairs (empty when it fits). */
export function checkEncoder(c: ModelShape): [string, string][] {
  const e = c.encoder;
  const problems: [string, string][] = [];
  switch (e.kind) {
    case 'convstem': {
      const convs = Math.log2(c.patchSize);
      if (!Number.isInteger(convs) || convs < 1) {
        problems.push([
          'patchSize',
          `a ConvStem needs a power-of-two patchSize of 2 or more (its stride-2 convolutions), got ${c.patchSize}`,
        ]);
      } else if (e.stemChannels.length !== convs) {
        problems.push([
          'encoder',
          `encoder.stemChannels has ${e.stemChannels.length} values; patchSize ${c.patchSize} needs ${convs} ` +
            `(one per stride-2 convolution, log2 of the patch size)`,
        ]);
      }
      break;
    }
    case 'convit':
      if (e.localUpToLayer >= c.depth) {
        problems.push([
          'encoder',
          `encoder.localUpToLayer ${e.localUpToLayer} must be < depth ${c.depth} (the class token joins after the GPSA blocks)`,
        ]);
      }
      break;
    case 'convnext': {
      if (e.depths.length !== e.dims.length) {
        problems.push([
          'encoder',
          `encoder.depths has ${e.depths.length} stages but encoder.dims ${e.dims.length}: give one width per stage`,
        ]);
      }
      const stride = c.patchSize * 2 ** (e.depths.length - 1);
      if (c.imageSize % stride !== 0) {
        problems.push([
          'imageSize',
          `ConvNeXt's last stage has ${stride} px cells (stem patchSize ${c.patchSize}, halved ${e.depths.length - 1} times); ` +
            `imageSize ${c.imageSize} must be a multiple of it`,
        ]);
      }
      break;
    }
    case 'swin': {
      if (e.depths.length !== e.stageHeads.length) {
        problems.push([
          'encoder',
          `encoder.depths has ${e.depths.length} stages but encoder.stageHeads ${e.stageHeads.length}: give one head count per stage`,
        ]);
      }
      const grid = c.imageSize / c.patchSize;
      const halvings = e.depths.length - 1;
      if (!Number.isInteger(grid / 2 ** halvings)) {
        problems.push([
          'imageSize',
          `Swin halves its ${grid} x ${grid} token grid ${halvings} times; imageSize / patchSize must be a multiple of ${2 ** halvings}`,
        ]);
      }
      e.stageHeads.forEach((heads, i) => {
        if ((c.width * 2 ** i) % heads !== 0) {
          problems.push([
            'encoder',
            `Swin stage ${i + 1} has width ${c.width * 2 ** i} (width x 2^${i}), not divisible by its ${heads} heads`,
          ]);
        }
      });
      break;
    }
    default:
      break;
  }
  return problems;
}

/** What to tell a user whose model needs the PyTorch engine, or null when the tfjs engine has the encoder. */
export function tfjsEncoderRefusal(encoder: EncoderConfig): string | null {
  if (!TORCH_ONLY_ENCODERS.includes(encoder.kind)) return null;
  return (
    `The ${encoder.kind} encoder runs on the PyTorch engine only: choose engine "torch" ` +
    `(the run form's Engine field, or --engine torch on the command line)`
  );
}
