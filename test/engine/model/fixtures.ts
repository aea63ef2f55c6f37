import * as tf from '@tensorflow/tfjs-core';
import { modelConfigFromPreset, type ModelConfig } from '../../../src/shared/model-config';
import type { ParamMap } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import type { RefParams } from './reference';

/** The micro preset: 16 px, patch 4 (L = 16, K = 48), width 32, depth 2, 2 heads, decoder 32 x 1 x 2. */
export function microConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return modelConfigFromPreset('micro', 16, overrides);
}

/**
 * Replace every parameter by random values so that biases, LayerNorm weights and tokens all matter
 * (the real init has zero biases and unit norms, which would hide layout mistakes).
 */
export function randomizeParams(params: ParamMap, rng: Rng): void {
  for (const [name, v] of params) {
    const values = new Float32Array(v.size);
    const isNormWeight = /norm\d?\.weight$/.test(name);
    const isMatrix = v.rank === 2;
    const scale = isMatrix ? 1 / Math.sqrt(v.shape[0] ?? 1) : name.endsWith('token') ? 0.5 : 0.1;
    for (let i = 0; i < values.length; i++) values[i] = (isNormWeight ? 1 : 0) + scale * rng.normal();
    const t = tf.tensor(values, v.shape);
    v.assign(t);
    t.dispose();
  }
}

export function toRefParams(params: ParamMap): RefParams {
  return new Map([...params].map(([name, v]) => [name, Float64Array.from(v.dataSync())]));
}

/** Random NHWC images in [0, 1] as float64 arrays (one per sample) and as a float32 tensor. */
export function randomImages(
  rng: Rng,
  n: number,
  config: ModelConfig,
): { arrays: Float64Array[]; tensor: tf.Tensor4D } {
  const size = config.imageSize * config.imageSize * config.channels;
  const arrays = Array.from({ length: n }, () => {
    const a = new Float64Array(size);
    for (let i = 0; i < size; i++) a[i] = Math.fround(rng.uniform());
    return a;
  });
  const flat = new Float32Array(n * size);
  arrays.forEach((a, i) => flat.set(a, i * size));
  return { arrays, tensor: tf.tensor4d(flat, [n, config.imageSize, config.imageSize, config.channels]) };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}

export function flat(rows: ArrayLike<number>[]): number[] {
  return rows.flatMap((r) => Array.from(r));
}

export { Rng };
