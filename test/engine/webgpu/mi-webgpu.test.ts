import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { renyiEntropyOfShiftedKernel } from '../../../src/engine/mi/linalg-ops';
import { mutualInformation, renyiEntropy } from '../../../src/engine/mi/mutual-information';
import { Rng } from '../../../src/engine/rng';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import {
  finiteDifferenceGradient,
  hsicRef,
  kernel,
  nhsicRef,
  randomMatrix,
  renyiEntropyOfKernel,
  renyiRef,
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

/** The estimator's gradients on webgpu against central differences of its float64 reference, for each options. */
async function expectGradientsMatch(
  estimator: 'nhsic' | 'renyi',
  reference: (a: number[][], b: number[][], opts: RefOptions) => number,
  rng: Rng,
  optionSets: Array<Partial<RefOptions>>,
): Promise<void> {
  for (const options of optionSets) {
    const [a, b] = dependentPair(rng, 8, 4, 3);
    const opts = { ...DEFAULTS, ...options };
    const fdA = finiteDifferenceGradient((x) => reference(x, b, opts), a, 1e-4).flat();
    const fdB = finiteDifferenceGradient((x) => reference(a, x, opts), b, 1e-4).flat();
    const grads = tf.tidy(() =>
      tf.grads((x: tf.Tensor, y: tf.Tensor) => mutualInformation(estimator, x, y, options))([
        tf.tensor2d(a),
        tf.tensor2d(b),
      ]),
    );
    const [gA, gB] = await Promise.all(grads.map(async (g) => Array.from(await g.data())));
    tf.dispose(grads);
    const errA = normDifference(gA ?? [], fdA);
    const errB = normDifference(gB ?? [], fdB);
    console.log(
      `webgpu ${estimator} ${JSON.stringify(options)} gradient vs central differences: A ${errA.toExponential(2)}, B ${errB.toExponential(2)}`,
    );
    expect(errA).toBeLessThan(1e-2);
    expect(errB).toBeLessThan(1e-2);
  }
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
    await expectGradientsMatch('nhsic', nhsicRef, new Rng(23), [{}, { sigma: 1.5 }]);
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('with the median bandwidth: HSIC, nHSIC and Renyi MI match the float64 reference, their gradients the cpu backend', async () => {
    const rng = new Rng(17);
    const options: Partial<RefOptions> = { bandwidth: 'median' };
    const opts = { ...DEFAULTS, ...options };
    // 21 pairs (an odd count: the middle one) and 276 (even: the mean of the middle two).
    for (const n of [7, 24]) {
      const [a, b] = dependentPair(rng, n, 6, 4);
      for (const [estimator, ref] of [
        ['hsic', hsicRef],
        ['nhsic', nhsicRef],
        ['renyi', renyiRef],
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

describe('Renyi entropy and MI on webgpu (SwiftShader): the eigendecomposition on the device', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('gives the entropy and MI of the float64 reference to 1e-5 relative', async () => {
    const rng = new Rng(31);
    const cases: Array<{ name: string; n: number; dA: number; dB: number; options: Partial<RefOptions> }> = [
      { name: 'N 8, defaults (sigma 5, alpha 1.01)', n: 8, dA: 5, dB: 3, options: {} },
      { name: 'N 16, sigma 1', n: 16, dA: 12, dB: 7, options: { sigma: 1 } },
      { name: 'N 33, sigma 0.5, alpha 2', n: 33, dA: 9, dB: 20, options: { sigma: 0.5, alpha: 2 } },
      { name: 'N 64, defaults', n: 64, dA: 16, dB: 8, options: {} },
    ];
    for (const c of cases) {
      const opts = { ...DEFAULTS, ...c.options };
      const [a, b] = dependentPair(rng, c.n, c.dA, c.dB);
      const wantH = renyiEntropyOfKernel(kernel(a, opts), opts.alpha);
      const wantMi = renyiRef(a, b, opts);
      const outputs = tf.tidy(() => [
        renyiEntropy(tf.tensor2d(a), c.options),
        mutualInformation('renyi', tf.tensor2d(a), tf.tensor2d(b), c.options),
      ]);
      const [h, mi] = await Promise.all(outputs.map(async (t) => (await t.data())[0] ?? Number.NaN));
      tf.dispose(outputs);
      const errH = Math.abs((h ?? NaN) - wantH) / Math.abs(wantH);
      const errMi = Math.abs((mi ?? NaN) - wantMi) / Math.abs(wantMi);
      console.log(
        `webgpu renyi ${c.name}: H ${h} vs ${wantH} (relative error ${errH.toExponential(2)}); MI ${mi} vs ${wantMi} (${errMi.toExponential(2)})`,
      );
      expect(errH, `${c.name} entropy`).toBeLessThan(1e-5);
      expect(errMi, `${c.name} MI`).toBeLessThan(1e-5);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('gives log2(N) for an identity kernel, and counts negative eigenvalues as 0', async () => {
    for (const n of [8, 32]) {
      const delta = 1e-3;
      const outputs = tf.tidy(() => [
        // K - 1 = I - 1 1^T: K = I, eigenvalues 1/N each.
        renyiEntropyOfShiftedKernel(tf.sub(tf.eye(n), 1), 1.01),
        // K = 1 1^T: one eigenvalue 1, the others 0: entropy 0.
        renyiEntropyOfShiftedKernel(tf.zeros([n, n]), 2),
        // K = 1 1^T - delta (I - 1 1^T / N): eigenvalues N and -delta (N - 1 times), trace t = N - delta (N - 1).
        // The negative ones count in t, not in the sum: H = alpha log2(N / t) / (1 - alpha).
        renyiEntropyOfShiftedKernel(tf.mul(tf.sub(tf.eye(n), 1 / n), -delta), 2),
      ]);
      const [h, zero, negative] = await Promise.all(outputs.map(async (t) => (await t.data())[0] ?? NaN));
      tf.dispose(outputs);
      const want = (2 * Math.log2(n / (n - delta * (n - 1)))) / (1 - 2);
      console.log(
        `webgpu renyi N ${n}: identity kernel ${h} (log2 N = ${Math.log2(n)}), constant kernel ${zero}, negative eigenvalues ${negative} (want ${want})`,
      );
      expect(Math.abs((h ?? NaN) - Math.log2(n)) / Math.log2(n)).toBeLessThan(1e-6);
      expect(Math.abs(zero ?? NaN)).toBeLessThan(1e-6);
      expect(Math.abs((negative ?? NaN) - want) / Math.abs(want)).toBeLessThan(1e-4);
    }
  }, 120_000);

  it('says what to do with a batch above the eigensolver limit of 512', () => {
    const big = tf.zeros([513, 513]) as tf.Tensor2D;
    expect(() => renyiEntropyOfShiftedKernel(big, 2)).toThrow(
      /on webgpu the Renyi estimator takes batches of up to 512 samples, got 513: use a smaller batch, the MI estimator 'nhsic' or 'hsic', or another backend/,
    );
    big.dispose();
  });

  it('has the gradient of the reference (central differences) for both inputs', async () => {
    await expectGradientsMatch('renyi', renyiRef, new Rng(37), [{}, { sigma: 1.5, alpha: 2 }]);
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('leaks no tensor across optimiser steps and forward passes', () => {
    const rng = new Rng(3);
    const x = tf.tensor2d(randomMatrix(rng, 12, 5));
    const w = tf.variable(tf.tensor2d(randomMatrix(rng, 5, 4)));
    const optimizer = tf.train.sgd(0.1);
    const step = (): void => {
      optimizer.minimize(() => mutualInformation('renyi', x, tf.tanh(tf.matMul(x, w))), true)?.dispose();
      tf.tidy(() => mutualInformation('renyi', x, x)).dispose();
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
    optimizer.dispose();
  }, 120_000);
});
