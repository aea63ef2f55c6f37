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

/** One filter-normalised Gaussian direction, drawing from `rng` for every element of every parameter in map order. */
export function filterNormalizedDirection(
  weights: ReadonlyMap<string, WeightValues>,
  rng: Rng,
  options: DirectionOptions = {},
): Direction {
  const ignore = options.ignoreBiasNorm ?? true;
  const direction: Direction = new Map();
  for (const [name, weight] of weights) {
    const draw = new Float64Array(weight.data.length);
    for (let i = 0; i < draw.length; i++) draw[i] = rng.normal();
    const filters = filterIndices(weight.shape);
    if (!filters) {
      direction.set(name, ignore ? null : Float32Array.from(weight.data));
      continue;
    }
    const out = new Float32Array(draw.length);
    for (const indices of filters) {
      let dNorm = 0;
      let wNorm = 0;
      for (const i of indices) {
        dNorm += (draw[i] ?? 0) ** 2;
        wNorm += (weight.data[i] ?? 0) ** 2;
      }
      const scale = Math.sqrt(wNorm) / (Math.sqrt(dNorm) + NORM_EPS);
      for (const i of indices) out[i] = (draw[i] ?? 0) * scale;
    }
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
