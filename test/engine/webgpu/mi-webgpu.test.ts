import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import { Rng } from '../../../src/engine/rng';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import {
  finiteDifferenceGradient,
  hsicRef,
  nhsicRef,
  randomMatrix,
  type Matrix,
  type RefOptions,
} from '../mi/reference';
import { useSwiftShader } from './swiftshader';

const DEFAULTS: RefOptions = { sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 1e-5 };

/** B = A W + noise: dependent features, so nHSIC is far from its independence level. */
function dependentPair(rng: Rng, n: number, dA: number, dB: number): [Matrix, Matrix] {
  const a = randomMatrix(rng, n, dA);
  const w = randomMatrix(rng, dA, dB, 1 / Math.sqrt(dA));
  const b = a.map((row) =>
    Array.from({ length: dB }, (_, j) =>
      Math.fround(row.reduce((s, v, t) => s + v * (w[t]?.[j] ?? 0), 0) + 0.3 * rng.normal()),
    ),
  );
  return [a, b];
}

function normDifference(got: number[], want: number[]): number {
  let diff = 0;
  let norm = 0;
  want.forEach((w, i) => {
    diff += ((got[i] ?? Number.NaN) - w) ** 2;
    norm += w * w;
  });
  return Math.sqrt(diff / norm);
}

describe('nHSIC on webgpu (SwiftShader), with no synchronous read', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('matches the float64 reference to 1e-4 relative', async () => {
    const rng = new Rng(11);
    const cases: Array<{ name: string; n: number; dA: number; dB: number; options: Partial<RefOptions> }> = [
      { name: 'N 8, defaults', n: 8, dA: 5, dB: 3, options: {} },
      { name: 'N 16, sigma 1', n: 16, dA: 12, dB: 7, options: { sigma: 1 } },
      { name: 'N 40, sigma 0.5, epsR 1e-3', n: 40, dA: 9, dB: 20, options: { sigma: 0.5, epsR: 1e-3 } },
    ];
    for (const c of cases) {
      const [a, b] = dependentPair(rng, c.n, c.dA, c.dB);
      const want = nhsicRef(a, b, { ...DEFAULTS, ...c.options });
      const estimate = tf.tidy(() => mutualInformation('nhsic', tf.tensor2d(a), tf.tensor2d(b), c.options));
      const got = (await estimate.data())[0] ?? Number.NaN;
      estimate.dispose();
      const error = Math.abs(got - want) / Math.abs(want);
      console.log(`webgpu nhsic ${c.name}: ${got} vs ${want}, relative error ${error.toExponential(2)}`);
      expect(error, `${c.name}: got ${got}, want ${want}`).toBeLessThan(1e-4);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('has the gradient of the reference (central differences) for both inputs', async () => {
    const rng = new Rng(23);
    for (const options of [{}, { sigma: 1.5 }] as Array<Partial<RefOptions>>) {
      const [a, b] = dependentPair(rng, 8, 4, 3);
      const opts = { ...DEFAULTS, ...options };
      const fdA = finiteDifferenceGradient((x) => nhsicRef(x, b, opts), a, 1e-4).flat();
      const fdB = finiteDifferenceGradient((x) => nhsicRef(a, x, opts), b, 1e-4).flat();
      const grads = tf.tidy(() =>
        tf.grads((x: tf.Tensor, y: tf.Tensor) => mutualInformation('nhsic', x, y, options))([
          tf.tensor2d(a),
          tf.tensor2d(b),
        ]),
      );
      const [gA, gB] = await Promise.all(grads.map(async (g) => Array.from(await g.data())));
      tf.dispose(grads);
      const errA = normDifference(gA ?? [], fdA);
      const errB = normDifference(gB ?? [], fdB);
      console.log(
        `webgpu nhsic ${JSON.stringify(options)} gradient vs central differences: A ${errA.toExponential(2)}, B ${errB.toExponential(2)}`,
      );
      expect(errA).toBeLessThan(1e-2);
      expect(errB).toBeLessThan(1e-2);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('with the median bandwidth: HSIC and nHSIC match the float64 reference, their gradients the cpu backend', async () => {
    const rng = new Rng(17);
    const options: Partial<RefOptions> = { bandwidth: 'median' };
    const opts = { ...DEFAULTS, ...options };
    // 21 pairs (an odd count: the middle one) and 276 (even: the mean of the middle two).
    for (const n of [7, 24]) {
      const [a, b] = dependentPair(rng, n, 6, 4);
      for (const [estimator, ref] of [
        ['hsic', hsicRef],
        ['nhsic', nhsicRef],
      ] as const) {
        const want = ref(a, b, opts);
        const run = (): { value: tf.Scalar; grads: tf.Tensor[] } =>
          tf.tidy(() => {
            const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) =>
              mutualInformation(estimator, x, y, options),
            )([tf.tensor2d(a), tf.tensor2d(b)]);
            return { value: value as tf.Scalar, grads };
          });
        const gpu = run();
        const got = (await gpu.value.data())[0] ?? Number.NaN;
        const gpuGrads = await Promise.all(gpu.grads.map(async (g) => Array.from(await g.data())));
        tf.dispose([gpu.value, ...gpu.grads]);
        await selectBackend({ backend: 'cpu', forcedBy: 'env' }, 'cli');
        const cpu = run();
        const cpuGrads = cpu.grads.map((g) => Array.from(g.dataSync()));
        tf.dispose([cpu.value, ...cpu.grads]);
        expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
        const error = Math.abs(got - want) / Math.abs(want);
        const gradError = Math.max(...cpuGrads.map((g, i) => normDifference(gpuGrads[i] ?? [], g)));
        console.log(
          `webgpu ${estimator} median N ${n}: ${got} vs ${want}, relative error ${error.toExponential(2)}; gradient vs cpu ${gradError.toExponential(2)}`,
        );
        expect(error, `${estimator} N ${n}`).toBeLessThan(1e-4);
        expect(gradError, `${estimator} N ${n}`).toBeLessThan(1e-3);
      }
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);
});
