import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../rng';
import { normalRows, signedUniformRows } from './streams';
import type { ThreatModel } from './types';

/**
 * A random start of radius eps: perturbations [N, H, W, C], row i drawn from stream i only. `shape`
 * is the image batch shape.
 */
export type StartSampler = (
  streams: Rng[],
  shape: [number, number, number, number],
  threat: ThreatModel,
  eps: number,
) => tf.Tensor4D;

/**
 * The two starts' common draw: l_inf, values uniform in [-1, 1] that `scaleLinf` rescales in place;
 * l_2, a standard normal direction per row scaled to the norm `radius` gives for that row's stream.
 */
function drawStart(
  streams: Rng[],
  shape: [number, number, number, number],
  threat: ThreatModel,
  scaleLinf: (values: Float32Array, perRow: number) => void,
  radius: (rng: Rng) => number,
): tf.Tensor4D {
  const perRow = shape[1] * shape[2] * shape[3];
  if (threat === 'linf') {
    const t = signedUniformRows(streams, perRow);
    scaleLinf(t, perRow);
    return tf.tensor4d(t, shape);
  }
  const g = normalRows(streams, perRow);
  scaleRowsToNorm(g, perRow, streams.map(radius));
  return tf.tensor4d(g, shape);
}

/** PGD's random start: uniform in the l_inf box, or a uniform direction with radius eps * U(0, 1) for l_2. */
export const pgdStart: StartSampler = (streams, shape, threat, eps) =>
  drawStart(
    streams,
    shape,
    threat,
    (u) => {
      for (let i = 0; i < u.length; i++) u[i] = u[i] * eps;
    },
    (rng) => eps * rng.uniform(),
  );

/**
 * AutoAttack's APGD start: t / max|t| * eps for t uniform in [-1, 1] (l_inf), t / ||t||_2 * eps for
 * t standard normal (l_2); the perturbation's norm is eps.
 */
export const apgdStart: StartSampler = (streams, shape, threat, eps) =>
  drawStart(
    streams,
    shape,
    threat,
    (t, perRow) => {
      for (let r = 0; r < streams.length; r++) {
        let max = 0;
        for (let j = r * perRow; j < (r + 1) * perRow; j++) max = Math.max(max, Math.abs(t[j]));
        const scale = eps / (max + 1e-12);
        for (let j = r * perRow; j < (r + 1) * perRow; j++) t[j] = t[j] * scale;
      }
    },
    () => eps,
  );

/** Scale each row of `values` to the l_2 norm given for it (AutoAttack's normalize: / (norm + 1e-12)). */
export function scaleRowsToNorm(values: Float32Array, perRow: number, norms: number[]): void {
  norms.forEach((target, r) => {
    let sq = 0;
    for (let j = r * perRow; j < (r + 1) * perRow; j++) sq += values[j] ** 2;
    const scale = target / (Math.sqrt(sq) + 1e-12);
    for (let j = r * perRow; j < (r + 1) * perRow; j++) values[j] = values[j] * scale;
  });
}
