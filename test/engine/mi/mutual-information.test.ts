import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { MI_ESTIMATORS, MiConfig, type MiEstimator } from '../../../src/shared/mi-config';
import { mutualInformation, renyiEntropy } from '../../../src/engine/mi/mutual-information';
import { renyiEntropyOfShiftedKernel } from '../../../src/engine/mi/linalg-ops';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { REFERENCES, finiteDifferenceGradient, randomMatrix, type Matrix, type RefOptions } from './reference';

const DEFAULTS: RefOptions = { sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 1e-5 };

interface Case {
  name: string;
  n: number;
  dA: number;
  dB: number;
  options: Partial<RefOptions>;
  /** B = A W + noise instead of independent, so the estimate is far from its independence level. */
  dependent: boolean;
}

const CASES: Case[] = [
  { name: 'N 8, defaults, independent', n: 8, dA: 5, dB: 3, options: {}, dependent: false },
  { name: 'N 16, sigma 1, alpha 2, dependent', n: 16, dA: 12, dB: 7, options: { sigma: 1, alpha: 2 }, dependent: true },
  {
    name: 'N 24, median bandwidth, alpha 1.5',
    n: 24,
    dA: 6,
    dB: 4,
    options: { bandwidth: 'median', alpha: 1.5 },
    dependent: true,
  },
  { name: 'N 40, sigma 0.5, epsR 1e-3', n: 40, dA: 9, dB: 20, options: { sigma: 0.5, epsR: 1e-3 }, dependent: true },
];

function makeInputs(rng: Rng, c: Case): [Matrix, Matrix] {
  const a = randomMatrix(rng, c.n, c.dA);
  if (!c.dependent) return [a, randomMatrix(rng, c.n, c.dB)];
  const w = randomMatrix(rng, c.dA, c.dB, 1 / Math.sqrt(c.dA));
  const b = a.map((row) =>
    Array.from({ length: c.dB }, (_, j) => row.reduce((s, v, t) => s + v * (w[t]?.[j] ?? 0), 0) + 0.3 * rng.normal()),
  );
  return [a, b];
}

const relativeError = (got: number, want: number): number => Math.abs(got - want) / Math.max(Math.abs(want), 1e-12);

function normDifference(got: number[], want: number[]): number {
  let diff = 0;
  let norm = 0;
  want.forEach((w, i) => {
    diff += ((got[i] ?? Number.NaN) - w) ** 2;
    norm += w * w;
  });
  return Math.sqrt(diff / norm);
}

function estimate(estimator: MiEstimator, a: Matrix, b: Matrix, options: Partial<RefOptions>): number {
  return tf.tidy(() => mutualInformation(estimator, tf.tensor2d(a), tf.tensor2d(b), options).dataSync()[0] as number);
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`mutual information on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    for (const estimator of MI_ESTIMATORS) {
      it(`${estimator} matches the float64 reference to 1e-4 relative`, () => {
        const rng = new Rng(11);
        let worst = 0;
        for (const c of CASES) {
          const [a, b] = makeInputs(rng, c);
          const opts = { ...DEFAULTS, ...c.options };
          const want = REFERENCES[estimator](a, b, opts);
          const got = estimate(estimator, a, b, c.options);
          worst = Math.max(worst, relativeError(got, want));
          expect(relativeError(got, want), `${c.name}: got ${got}, want ${want}`).toBeLessThan(1e-4);
        }
        console.log(
          `${backend} ${estimator}: worst relative error over ${CASES.length} cases ${worst.toExponential(2)}`,
        );
      });

      it(`${estimator} gradient matches central differences of the reference for both inputs`, () => {
        const rng = new Rng(23);
        // The spec's default kernel, and a narrower one with another alpha.
        const settings: Partial<RefOptions>[] = [{}, { sigma: 1.5, alpha: 1.3 }];
        for (const options of settings) {
          const c: Case = { name: 'grad', n: 8, dA: 4, dB: 3, options, dependent: true };
          const [a, b] = makeInputs(rng, c);
          const opts = { ...DEFAULTS, ...options };
          const ref = REFERENCES[estimator];
          const fdA = finiteDifferenceGradient((x) => ref(x, b, opts), a, 1e-4).flat();
          const fdB = finiteDifferenceGradient((x) => ref(a, x, opts), b, 1e-4).flat();
          const [gA, gB] = tf.tidy(() => {
            const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => mutualInformation(estimator, x, y, options));
            return grads([tf.tensor2d(a), tf.tensor2d(b)]).map((g) => Array.from(g.dataSync()));
          }) as [number[], number[]];
          const errA = normDifference(gA, fdA);
          const errB = normDifference(gB, fdB);
          console.log(
            `${backend} ${estimator} ${JSON.stringify(options)} gradient vs central differences: ` +
              `relative norm difference A ${errA.toExponential(2)}, B ${errB.toExponential(2)}`,
          );
          expect(errA).toBeLessThan(1e-2);
          expect(errB).toBeLessThan(1e-2);
        }
      });
    }

    it('stays within 1e-4 of the reference on image-like inputs at the default kernel (all entries near 1)', () => {
      // x + delta: pixels in [0, 1] around a shared image; z: a nonlinear function of it.
      const rng = new Rng(31);
      const n = 48;
      const dX = 192;
      const dZ = 260;
      const base = Array.from({ length: dX }, () => rng.uniform());
      const x = Array.from({ length: n }, () =>
        base.map((p) => Math.fround(Math.min(1, Math.max(0, p + 0.2 * rng.normal())))),
      );
      const w = randomMatrix(rng, dX, dZ, 1 / Math.sqrt(dX));
      const z = x.map((row) =>
        Array.from({ length: dZ }, (_, j) =>
          Math.fround(Math.tanh(row.reduce((s, v, t) => s + v * (w[t]?.[j] ?? 0), 0)) + 3),
        ),
      );
      for (const estimator of MI_ESTIMATORS) {
        const want = REFERENCES[estimator](x, z, DEFAULTS);
        const got = estimate(estimator, x, z, {});
        console.log(
          `${backend} ${estimator} image-like: ${got} vs ${want}, relative error ${relativeError(got, want).toExponential(2)}`,
        );
        expect(relativeError(got, want), `${estimator}: got ${got}, want ${want}`).toBeLessThan(1e-4);
      }
    });

    it('takes inputs of any rank, flattened per sample', () => {
      const rng = new Rng(5);
      const a = randomMatrix(rng, 10, 12);
      const b = randomMatrix(rng, 10, 6);
      for (const estimator of MI_ESTIMATORS) {
        const flat = estimate(estimator, a, b, {});
        const shaped = tf.tidy(
          () =>
            mutualInformation(
              estimator,
              tf.tensor4d(a.flat(), [10, 2, 2, 3]),
              tf.tensor3d(b.flat(), [10, 3, 2]),
            ).dataSync()[0] as number,
        );
        expect(shaped).toBeCloseTo(flat, 6);
      }
    });

    it('orders every estimator: identical inputs clearly above independent ones', () => {
      const rng = new Rng(8);
      const a = randomMatrix(rng, 32, 6);
      const independent = randomMatrix(rng, 32, 6);
      // nHSIC of independent batches is not near 0: it counts the kernel directions above the ridge that the two share.
      const margin = { hsic: 2, nhsic: 1.2, renyi: 2 } as const;
      for (const estimator of MI_ESTIMATORS) {
        const same = estimate(estimator, a, a, {});
        const indep = estimate(estimator, a, independent, {});
        console.log(`${backend} ${estimator}: identical ${same.toPrecision(4)}, independent ${indep.toPrecision(4)}`);
        expect(indep, estimator).toBeGreaterThan(0);
        expect(same, estimator).toBeGreaterThan(margin[estimator] * indep);
      }
    });

    it('gives the Renyi entropy log2(N) for an identity kernel (all points far apart)', () => {
      for (const n of [8, 32]) {
        const viaOp = tf.tidy(() => renyiEntropyOfShiftedKernel(tf.sub(tf.eye(n), 1), 1.01).dataSync()[0] as number);
        expect(viaOp).toBeCloseTo(Math.log2(n), 5);
        // Well separated points and a narrow kernel give the identity numerically.
        const points = tf.tidy(() => tf.mul(tf.eye(n), 100));
        const viaFeatures = tf.tidy(() => renyiEntropy(points, { sigma: 0.1, alpha: 2 }).dataSync()[0] as number);
        points.dispose();
        expect(viaFeatures).toBeCloseTo(Math.log2(n), 5);
      }
    });

    it('leaks no tensor across a gradient step of an optimiser', () => {
      const rng = new Rng(3);
      const x = tf.tensor2d(randomMatrix(rng, 12, 5));
      const w = tf.variable(tf.tensor2d(randomMatrix(rng, 5, 4)));
      const optimizer = tf.train.sgd(0.1);
      for (const estimator of MI_ESTIMATORS) {
        const step = (): void => {
          const loss = optimizer.minimize(() => mutualInformation(estimator, x, tf.tanh(tf.matMul(x, w))), true);
          loss?.dispose();
        };
        step();
        const before = tf.memory().numTensors;
        step();
        step();
        expect(tf.memory().numTensors, estimator).toBe(before);
      }
      // Forward passes outside a gradient too.
      const before = tf.memory().numTensors;
      for (const estimator of MI_ESTIMATORS) mutualInformation(estimator, x, x).dispose();
      expect(tf.memory().numTensors).toBe(before);
      optimizer.dispose();
      x.dispose();
      w.dispose();
    });

    it('rejects mismatched sample counts, a single sample and bad options', () => {
      tf.tidy(() => {
        expect(() => mutualInformation('hsic', tf.zeros([4, 3]), tf.zeros([5, 3]))).toThrow(/4 and 5 samples/);
        expect(() => mutualInformation('renyi', tf.zeros([1, 3]), tf.zeros([1, 3]))).toThrow(/at least 2 samples/);
        expect(() => mutualInformation('renyi', tf.zeros([4, 3]), tf.zeros([4, 3]), { alpha: 1 })).toThrow(
          /alpha must be above 1/,
        );
        expect(() => mutualInformation('hsic', tf.zeros([4, 3]), tf.zeros([4, 3]), { sigma: -1 })).toThrow(
          /sigma must be positive/,
        );
        const nan = tf.tensor2d([
          [0, Number.NaN],
          [1, 2],
          [3, 4],
        ]);
        expect(() => mutualInformation('nhsic', nan, nan)).toThrow(/not finite/);
        expect(() => mutualInformation('renyi', nan, nan)).toThrow(/not finite/);
      });
    });
  });
}

describe('MiConfig', () => {
  it('fills the defaults of the spec and rejects unknown estimators', () => {
    expect(MiConfig.parse({})).toEqual({ estimator: 'nhsic', sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 1e-5 });
    expect(MiConfig.safeParse({ estimator: 'mine' }).success).toBe(false);
    expect(MiConfig.safeParse({ bandwidth: 'silverman' }).success).toBe(false);
  });
});
