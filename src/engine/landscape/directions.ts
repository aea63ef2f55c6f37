import { Rng } from '../rng';

/**
 * Random plane directions for a loss landscape (Li et al. 2018, Section 4): Gaussian, then scaled
 * filter by filter so that each filter of the direction has the Frobenius norm of the same filter of
 * the weights, which makes the plot independent of the network's scale invariances.
 *
 * Filters in this engine's layouts (the same split as the reference code's over PyTorch tensors):
 * - rank 2, a linear or patch-embedding weight stored [in, out]: one filter per output unit, a column
 *   (torch's weight is [out, in], a filter there is a row);
 * - rank 3 or more (cls_token, mask_token [1, 1, D]; same layout as torch): one filter per index of
 *   the first axis;
 * - rank 0 or 1 (biases, LayerNorm weights and biases): zero when ignoring bias/norm parameters
 *   (`ignore='biasbn'`), else the weights themselves (the reference copies them unscaled).
 * Everything is computed in float64 in JavaScript from the checkpoint's values, so the directions
 * are the same on every backend.
 */

export interface WeightValues {
  shape: readonly number[];
  data: Float32Array;
}

/** One direction: a Float32Array per parameter, or null where the direction is zero. */
export type Direction = Map<string, Float32Array | null>;

export interface DirectionOptions {
  /** Zero direction for rank <= 1 parameters (biases, norms). Default true. */
  ignoreBiasNorm?: boolean;
}

/** Guards against an all-zero filter of the random draw (as the reference's 1e-10). */
const NORM_EPS = 1e-10;

/** Element indices of each filter of a parameter of `shape` (see the module comment); null for rank <= 1. */
export function filterIndices(shape: readonly number[]): Int32Array[] | null {
  if (shape.length <= 1) return null;
  const size = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 2) {
    const rows = shape[0] ?? 0;
    const cols = shape[1] ?? 0;
    return Array.from({ length: cols }, (_, j) => Int32Array.from({ length: rows }, (_, i) => i * cols + j));
  }
  const filters = shape[0] ?? 0;
  const per = filters === 0 ? 0 : size / filters;
  return Array.from({ length: filters }, (_, f) => Int32Array.from({ length: per }, (_, i) => f * per + i));
}

/** Frobenius norm of each filter (float64); a rank <= 1 parameter counts as one filter. */
export function filterNorms(shape: readonly number[], data: ArrayLike<number>): Float64Array {
  const filters = filterIndices(shape) ?? [Int32Array.from({ length: data.length }, (_, i) => i)];
  return Float64Array.from(filters, (indices) => {
    let sum = 0;
    for (const i of indices) sum += (data[i] ?? 0) ** 2;
    return Math.sqrt(sum);
  });
}

/**
 * Which filter each element belongs to, as (index, filters): rank 2 [in, out] -> column i % out;
 * rank >= 3 -> block floor(i / (size / first)). Null for rank <= 1.
 */
function filterOf(shape: readonly number[], size: number): { filters: number; of: (i: number) => number } | null {
  if (shape.length <= 1) return null;
  if (shape.length === 2) {
    const cols = shape[1] ?? 1;
    return { filters: cols, of: (i) => i % cols };
  }
  const filters = shape[0] ?? 1;
  const per = size / filters;
  return { filters, of: (i) => Math.floor(i / per) };
}

/** Standard normal values from `rng` (Box-Muller, both outputs of each pair used). */
function fillGaussian(rng: Rng, out: Float64Array): void {
  for (let i = 0; i < out.length; i += 2) {
    let u = 0;
    while (u === 0) u = rng.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    const angle = 2 * Math.PI * rng.uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(angle);
  }
}

/** One filter-normalised Gaussian direction, drawing from `rng` for every element of every parameter in map order. */
export function filterNormalizedDirection(
  weights: ReadonlyMap<string, WeightValues>,
  rng: Rng,
  options: DirectionOptions = {},
): Direction {
  const ignore = options.ignoreBiasNorm ?? true;
  const direction: Direction = new Map();
  for (const [name, weight] of weights) {
    const size = weight.data.length;
    const draw = new Float64Array(size);
    fillGaussian(rng, draw);
    const split = filterOf(weight.shape, size);
    if (!split) {
      direction.set(name, ignore ? null : Float32Array.from(weight.data));
      continue;
    }
    const dNorm = new Float64Array(split.filters);
    const wNorm = new Float64Array(split.filters);
    for (let i = 0; i < size; i++) {
      const f = split.of(i);
      dNorm[f] = (dNorm[f] ?? 0) + (draw[i] ?? 0) ** 2;
      wNorm[f] = (wNorm[f] ?? 0) + (weight.data[i] ?? 0) ** 2;
    }
    const scale = Float64Array.from(dNorm, (d, f) => Math.sqrt(wNorm[f] ?? 0) / (Math.sqrt(d) + NORM_EPS));
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) out[i] = (draw[i] ?? 0) * (scale[split.of(i)] ?? 0);
    direction.set(name, out);
  }
  return direction;
}

/** The two directions of the plane, from one seed: d1 is drawn first, then d2 from the same stream. */
export function planeDirections(
  weights: ReadonlyMap<string, WeightValues>,
  seed: number,
  options: DirectionOptions = {},
): [Direction, Direction] {
  const rng = new Rng(seed);
  const d1 = filterNormalizedDirection(weights, rng, options);
  const d2 = filterNormalizedDirection(weights, rng, options);
  return [d1, d2];
}
