import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { useSwiftShader } from './swiftshader';

/** Float32 inputs spanning the branches: tiny, near the series' edges, and far out. */
const EXPM1_INPUTS = [
  -30, -3, -0.7, -0.5, -0.49, -0.1, -1e-3, -1e-6, -1e-9, 0, 1e-9, 1e-6, 3e-4, 0.01, 0.3, 0.49, 0.5, 1, 5, 40,
];
const LOG1P_INPUTS = [-0.99, -0.6, -0.5, -0.49, -0.1, -1e-4, -1e-8, 0, 1e-8, 1e-5, 0.02, 0.5, 0.99, 1, 3, 1e6];
const LOG_INPUTS = [1e-30, 1e-6, 0.1, 0.5, 0.51, 0.9, 0.999, 0.9999999, 1, 1.0000001, 1.001, 1.5, 1.99, 2, 10, 1e20];

/** Largest error relative to |want|, against float64 Math on the float32-rounded inputs. */
async function worstError(op: (x: tf.Tensor) => tf.Tensor, inputs: number[], want: (x: number) => number) {
  const xs = inputs.map(Math.fround);
  const y = tf.tidy(() => op(tf.tensor1d(xs)));
  const got = Array.from(await y.data());
  y.dispose();
  let worst = 0;
  xs.forEach((x, i) => {
    const w = want(x);
    const error = w === 0 ? Math.abs(got[i] ?? NaN) : Math.abs((got[i] ?? NaN) - w) / Math.abs(w);
    worst = Math.max(worst, Number.isNaN(error) ? Infinity : error);
  });
  return worst;
}

describe("expm1, log1p and log on webgpu (SwiftShader) to float32 precision, in place of tfjs's", () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('match float64 Math to a few float32 ulps, where exp(x) - 1 and log(1 + x) lose every digit', async () => {
    const errors = {
      expm1: await worstError(tf.expm1, EXPM1_INPUTS, Math.expm1),
      log1p: await worstError(tf.log1p, LOG1P_INPUTS, Math.log1p),
      log: await worstError(tf.log, LOG_INPUTS, Math.log),
    };
    console.log(`webgpu accurate unary, worst relative error: ${JSON.stringify(errors)}`);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-6);
    // Their edges: expm1(-inf) = -1, log1p(-1) = -inf, log of a negative is NaN.
    const edges = tf.tidy(() => [tf.expm1(tf.scalar(-Infinity)), tf.log1p(tf.scalar(-1)), tf.log(tf.scalar(-1))]);
    const values = await Promise.all(edges.map(async (t) => (await t.data())[0]));
    tf.dispose(edges);
    expect(values).toEqual([-1, -Infinity, NaN]);
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 120_000);
});
