import { gridSize, type ModelConfig } from '@shared/model-config';
import { classifierParamSpecs, maeParamSpecs, type ParamRole } from '../model/params';
import { sincosPosEmbed } from '../model/pos-embed';

/**
 * Conversion between the engine's parameter layouts and PyTorch's (timm's VisionTransformer, MAE's
 * MaskedAutoencoderViT): the names are already timm's / MAE's; linear weights are [in, out] here and
 * [out, in] in torch; the patch embedding is a linear map over (row, column, channel) patches here and
 * a conv kernel [D, C, p, p] there; convolution kernels (a ConvStem's) are HWIO here, [out, in, kh, kw]
 * there; the fixed sin-cos position embeddings are parameters there.
 */
export interface WeightArray {
  shape: number[];
  data: Float32Array;
}
export type Weights = Map<string, WeightArray>;

export type ExportKind = 'finetune' | 'pretrain';

/** The engine's parameter names and roles for a model of this kind. */
export function nativeRoles(kind: ExportKind, config: ModelConfig, headOutputs: number): Map<string, ParamRole> {
  const specs = kind === 'finetune' ? classifierParamSpecs(config, headOutputs) : maeParamSpecs(config);
  return new Map(specs.map((s) => [s.name, s.role]));
}

export function transpose2d(w: WeightArray): WeightArray {
  const [rows, cols] = w.shape as [number, number];
  const data = new Float32Array(w.data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = w.data[r * cols + c] ?? 0;
  return { shape: [cols, rows], data };
}

/**
 * Every entry (row i, column j, input c, output o) of a convolution kernel, with its index in the
 * HWIO layout [kh, kw, in, out] (a patch embedding's [p*p*C, D] is that with kh = kw = p) and in
 * torch's [out, in, kh, kw].
 */
function forEachConvWeight(
  kh: number,
  kw: number,
  cin: number,
  cout: number,
  visit: (hwio: number, torch: number) => void,
): void {
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let c = 0; c < cin; c++)
        for (let o = 0; o < cout; o++) visit(((i * kw + j) * cin + c) * cout + o, ((o * cin + c) * kh + i) * kw + j);
}

/** [p*p*C, D] (row i, column j, channel c; c fastest) -> torch conv weight [D, C, p, p]. */
export function patchWeightToConv(w: WeightArray, patch: number, channels: number): WeightArray {
  const [k, d] = w.shape as [number, number];
  if (k !== patch * patch * channels)
    throw new Error(`patch_embed.proj.weight [${w.shape}] is not [${patch}*${patch}*${channels}, D]`);
  const data = new Float32Array(w.data.length);
  forEachConvWeight(patch, patch, channels, d, (ours, conv) => (data[conv] = w.data[ours] ?? 0));
  return { shape: [d, channels, patch, patch], data };
}

export function convToPatchWeight(w: WeightArray): WeightArray {
  const [d, channels, patch, patch2] = w.shape as [number, number, number, number];
  if (w.shape.length !== 4 || patch !== patch2)
    throw new Error(`patch_embed.proj.weight [${w.shape}] is not a square conv kernel [D, C, p, p]`);
  const data = new Float32Array(w.data.length);
  forEachConvWeight(patch, patch, channels, d, (ours, conv) => (data[ours] = w.data[conv] ?? 0));
  return { shape: [patch * patch * channels, d], data };
}

/** A convolution kernel HWIO [kh, kw, in, out] -> torch's [out, in, kh, kw]. */
export function hwioToTorch(w: WeightArray): WeightArray {
  const [kh, kw, cin, cout] = w.shape as [number, number, number, number];
  const data = new Float32Array(w.data.length);
  forEachConvWeight(kh, kw, cin, cout, (hwio, torch) => (data[torch] = w.data[hwio] ?? 0));
  return { shape: [cout, cin, kh, kw], data };
}

/** torch's [out, in, kh, kw] -> HWIO [kh, kw, in, out]. */
export function torchToHwio(w: WeightArray): WeightArray {
  if (w.shape.length !== 4) throw new Error(`a convolution kernel must be [out, in, kh, kw], got [${w.shape}]`);
  const [cout, cin, kh, kw] = w.shape as [number, number, number, number];
  const data = new Float32Array(w.data.length);
  forEachConvWeight(kh, kw, cin, cout, (hwio, torch) => (data[hwio] = w.data[torch] ?? 0));
  return { shape: [kh, kw, cin, cout], data };
}

/** The fixed table as PyTorch holds it: [1, 1 + L, width], row 0 (cls) zero. */
export function posEmbedTensor(width: number, config: ModelConfig): WeightArray {
  const grid = gridSize(config);
  return { shape: [1, 1 + grid * grid, width], data: Float32Array.from(sincosPosEmbed(width, grid)) };
}

const ENCODER_PREFIXES = ['cls_token', 'patch_embed.', 'blocks.', 'norm.', 'fc_norm.', 'head.'];
export function isEncoderName(name: string): boolean {
  return ENCODER_PREFIXES.some((p) => name === p || name.startsWith(p));
}

/**
 * Native weights -> timm / MAE names and layouts. Classifiers: timm's VisionTransformer with
 * global_pool 'avg' and fc_norm (so no final `norm`). Pre-training checkpoints: the encoder as timm's
 * VisionTransformer with its final `norm` and no head; with `decoder`, MAE's decoder names too.
 */
export function toTorchLayout(
  weights: Weights,
  kind: ExportKind,
  config: ModelConfig,
  headOutputs: number,
  options: { decoder?: boolean } = {},
): Weights {
  const roles = nativeRoles(kind, config, headOutputs);
  const out: Weights = new Map();
  for (const [name, role] of roles) {
    if (kind === 'pretrain' && !options.decoder && !isEncoderName(name)) continue;
    const w = weights.get(name);
    if (!w) throw new Error(`the checkpoint has no "${name}"`);
    if (role === 'weight') out.set(name, transpose2d(w));
    else if (role === 'patch-weight') out.set(name, patchWeightToConv(w, config.patchSize, config.channels));
    else if (role === 'conv-weight') out.set(name, hwioToTorch(w));
    else out.set(name, { shape: [...w.shape], data: w.data });
    if (name === 'cls_token') out.set('pos_embed', posEmbedTensor(config.width, config));
    if (name === 'mask_token') out.set('decoder_pos_embed', posEmbedTensor(config.decoderWidth, config));
  }
  return out;
}

/** The largest |difference| between a file's position embedding and the fixed sin-cos table. */
function posEmbedError(w: WeightArray, expected: WeightArray): number {
  if (w.shape.join() !== expected.shape.join()) return Infinity;
  let worst = 0;
  for (let i = 0; i < w.data.length; i++) worst = Math.max(worst, Math.abs((w.data[i] ?? 0) - (expected.data[i] ?? 0)));
  return worst;
}

/**
 * timm / MAE names and layouts -> native weights. Position embeddings must be the fixed 2-D sin-cos
 * table the engine uses (within 1e-5): a learned one cannot be represented and is refused.
 */
export function fromTorchLayout(weights: Weights, kind: ExportKind, config: ModelConfig, headOutputs: number): Weights {
  const roles = nativeRoles(kind, config, headOutputs);
  const out: Weights = new Map();
  const problems: string[] = [];
  for (const [name, role] of roles) {
    const w = weights.get(name);
    if (!w) {
      problems.push(`lacks "${name}"`);
      continue;
    }
    if (role === 'weight') out.set(name, transpose2d(w));
    else if (role === 'patch-weight') out.set(name, convToPatchWeight(w));
    else if (role === 'conv-weight') out.set(name, torchToHwio(w));
    else out.set(name, { shape: [...w.shape], data: w.data });
  }
  const fixed: [string, number][] = [['pos_embed', config.width]];
  if (kind === 'pretrain') fixed.push(['decoder_pos_embed', config.decoderWidth]);
  for (const [name, width] of fixed) {
    const w = weights.get(name);
    if (!w) problems.push(`lacks "${name}"`);
    else {
      const error = posEmbedError(w, posEmbedTensor(width, config));
      if (!(error <= 1e-5)) {
        problems.push(
          `"${name}" [${w.shape}] is not the fixed 2-D sin-cos table of this model (largest difference ${error.toPrecision(3)}); learned position embeddings are not supported`,
        );
      }
    }
  }
  const known = new Set([...roles.keys(), ...fixed.map(([n]) => n)]);
  const extra = [...weights.keys()].filter((n) => !known.has(n));
  if (extra.length > 0)
    problems.push(
      `has parameters this model lacks: ${extra.slice(0, 6).join(', ')}${extra.length > 6 ? ` and ${extra.length - 6} more` : ''}`,
    );
  for (const [name, w] of out) {
    const expected = expectedShape(name, kind, config, headOutputs);
    if (expected && expected.join() !== w.shape.join())
      problems.push(`"${name}" has shape [${w.shape}], expected [${expected}] (after layout conversion)`);
  }
  if (problems.length > 0) throw new Error(`the file ${problems.join('; ')}`);
  return out;
}

function expectedShape(name: string, kind: ExportKind, config: ModelConfig, headOutputs: number): number[] | undefined {
  const specs = kind === 'finetune' ? classifierParamSpecs(config, headOutputs) : maeParamSpecs(config);
  return specs.find((s) => s.name === name)?.shape;
}
