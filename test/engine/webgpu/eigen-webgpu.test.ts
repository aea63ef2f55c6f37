import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { selectBackend } from '../../../src/engine/backend';
import { symmetricEigenKernel } from '../../../src/engine/kernels';
import { renyiEntropyOfShiftedKernel } from '../../../src/engine/mi/linalg-ops';
import { Rng } from '../../../src/engine/rng';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { JACOBI_MAX_SWEEPS } from '../../../src/engine/webgpu/eigen-program';
import { jacobiEigenvalues, kernel, matMul, randomMatrix, type Matrix } from '../mi/reference';
import { useSwiftShader } from './swiftshader';

const transpose = (m: Matrix): Matrix => (m[0] ?? []).map((_, j) => m.map((row) => row[j] as number));
const frobenius = (m: Matrix): number => Math.sqrt(m.flat().reduce((s, v) => s + v * v, 0));
const difference = (a: Matrix, b: Matrix): Matrix => a.map((row, i) => row.map((v, j) => v - (b[i]?.[j] ?? NaN)));

/** (G + G^T) / 2 of a standard normal G, rounded to float32. */
function randomSymmetric(rng: Rng, n: number): Matrix {
  const g = randomMatrix(rng, n, n);
  return g.map((row, i) => row.map((v, j) => Math.fround(0.5 * (v + (g[j]?.[i] ?? NaN)))));
}

/** X X^T / r of a random n x r X (r < n): rank r, so n - r eigenvalues are 0 (repeated and near zero in float32). */
function rankDeficientGram(rng: Rng, n: number, r: number): Matrix {
  const x = randomMatrix(rng, n, r);
  return matMul(x, transpose(x)).map((row) => row.map((v) => Math.fround(v / r)));
}

/** Q diag(d) Q^T with a random orthogonal Q (Gram-Schmidt of a normal matrix): prescribed, repeated eigenvalues. */
function withEigenvalues(rng: Rng, d: number[]): Matrix {
  const n = d.length;
  const q: number[][] = [];
  for (const g of randomMatrix(rng, n, n)) {
    const v = [...g];
    for (const u of q) {
      const dot = u.reduce((s, x, i) => s + x * (v[i] as number), 0);
      u.forEach((x, i) => (v[i] = (v[i] as number) - dot * x));
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  const qt = transpose(q);
  return matMul(
    qt.map((row) => row.map((v, j) => v * (d[j] as number))),
    q,
  ).map((row) => row.map(Math.fround));
}

interface Decomposition {
  values: number[];
  /** Eigenvectors as rows. */
  vectors: Matrix;
  sweeps: number;
}

async function eigenOnDevice(a: Matrix, shift: number): Promise<Decomposition> {
  const n = a.length;
  const outputs = tf.tidy(() => symmetricEigenKernel(tf.tensor2d(a), shift, true));
  const [values, vectors, sweeps] = await Promise.all(outputs.map(async (t) => Array.from(await t.data())));
  tf.dispose(outputs);
  return {
    values: values ?? [],
    vectors: Array.from({ length: n }, (_, i) => (vectors ?? []).slice(i * n, i * n + n)),
    sweeps: sweeps?.[0] ?? NaN,
  };
}

/**
 * max |lambda - lambda_ref| / max |lambda_ref| over the sorted eigenvalues, ||V^T diag(l) V - A|| / ||A||
 * and ||V V^T - I|| / sqrt(n), all in float64 against A's float64 values.
 */
function errors(a: Matrix, got: Decomposition): { values: number; reconstruction: number; orthogonality: number } {
  const n = a.length;
  const want = jacobiEigenvalues(a).sort((x, y) => x - y);
  const values = [...got.values].sort((x, y) => x - y);
  const scale = Math.max(...want.map(Math.abs));
  const valueError = Math.max(...want.map((w, i) => Math.abs((values[i] ?? NaN) - w))) / scale;
  const v = got.vectors;
  const rebuilt = matMul(
    transpose(v).map((row) => row.map((x, j) => x * (got.values[j] ?? NaN))),
    v,
  );
  const identity = a.map((row, i) => row.map((_, j) => (i === j ? 1 : 0)));
  return {
    values: valueError,
    reconstruction: frobenius(difference(rebuilt, a)) / frobenius(a),
    orthogonality: frobenius(difference(matMul(v, transpose(v)), identity)) / Math.sqrt(n),
  };
}

describe('symmetric eigendecomposition on webgpu (SwiftShader): parallel Jacobi in one workgroup', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('matches float64 Jacobi on random symmetric matrices, N = 1, 2, 7, 16, 33, 64', async () => {
    const rng = new Rng(5);
    for (const n of [1, 2, 7, 16, 33, 64]) {
      const a = randomSymmetric(rng, n);
      const got = await eigenOnDevice(a, 0);
      const e = errors(a, got);
      console.log(
        `webgpu eigen N ${n}: ${got.sweeps} sweeps; eigenvalues ${e.values.toExponential(2)}, reconstruction ${e.reconstruction.toExponential(2)}, orthogonality ${e.orthogonality.toExponential(2)} (relative)`,
      );
      expect(got.sweeps, `N ${n} converged`).toBeLessThanOrEqual(JACOBI_MAX_SWEEPS);
      expect(e.values, `N ${n}`).toBeLessThan(1e-5);
      expect(e.reconstruction, `N ${n}`).toBeLessThan(1e-5);
      expect(e.orthogonality, `N ${n}`).toBeLessThan(1e-5);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('handles repeated and zero eigenvalues: a rank-deficient Gram matrix and a prescribed spectrum', async () => {
    const rng = new Rng(8);
    const cases: Array<{ name: string; a: Matrix }> = [
      { name: 'Gram N 40 rank 6 (34 zero eigenvalues)', a: rankDeficientGram(rng, 40, 6) },
      { name: 'Gram N 33 rank 1', a: rankDeficientGram(rng, 33, 1) },
      {
        name: 'spectrum 1 x 10, 2 x 10, 1e-6 x 4',
        a: withEigenvalues(rng, [...Array(10).fill(1), ...Array(10).fill(2), ...Array(4).fill(1e-6)]),
      },
    ];
    for (const c of cases) {
      const got = await eigenOnDevice(c.a, 0);
      const e = errors(c.a, got);
      console.log(
        `webgpu eigen ${c.name}: ${got.sweeps} sweeps; eigenvalues ${e.values.toExponential(2)}, reconstruction ${e.reconstruction.toExponential(2)}, orthogonality ${e.orthogonality.toExponential(2)}`,
      );
      expect(got.sweeps, c.name).toBeLessThanOrEqual(JACOBI_MAX_SWEEPS);
      expect(e.values, c.name).toBeLessThan(1e-5);
      expect(e.reconstruction, c.name).toBeLessThan(1e-5);
      expect(e.orthogonality, c.name).toBeLessThan(1e-5);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('with shift 1, decomposes 1 1^T + S from S = K - 1 and keeps the small eigenvalues of a Gaussian kernel', async () => {
    const rng = new Rng(13);
    for (const [n, sigma] of [
      [16, 5],
      [64, 1],
    ] as const) {
      const x = randomMatrix(rng, n, 10);
      const k = kernel(x, { sigma, bandwidth: 'fixed', alpha: 2, epsR: 0 });
      const shifted = k.map((row) => row.map((v) => Math.fround(v - 1)));
      // The reference decomposes 1 + S in float64: the matrix the device was given, not a rounded K.
      const exact = shifted.map((row) => row.map((v) => 1 + v));
      const got = await eigenOnDevice(shifted, 1);
      const e = errors(exact, got);
      const want = jacobiEigenvalues(exact).sort((p, q) => p - q);
      const values = [...got.values].sort((p, q) => p - q);
      // The eigenvalues below the largest, whose sum is what sets a Renyi entropy apart from 0.
      const smallError =
        want.slice(0, -1).reduce((s, w, i) => s + Math.abs((values[i] ?? NaN) - w), 0) /
        want.slice(0, -1).reduce((s, w) => s + Math.abs(w), 0);
      console.log(
        `webgpu eigen 1 1^T + (K - 1), N ${n}, sigma ${sigma}: ${got.sweeps} sweeps; eigenvalues ${e.values.toExponential(2)}, all but the largest ${smallError.toExponential(2)} (l1, relative), reconstruction ${e.reconstruction.toExponential(2)}`,
      );
      expect(e.values).toBeLessThan(1e-6);
      expect(smallError).toBeLessThan(1e-4);
      expect(e.reconstruction).toBeLessThan(1e-5);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
  }, 300_000);

  it('info: time per decomposition at N = 64 and dispatches per Renyi entropy (no timing asserted)', async () => {
    const rng = new Rng(21);
    const a = tf.tensor2d(randomSymmetric(rng, 64));
    const decompose = async (): Promise<void> => {
      const outputs = symmetricEigenKernel(a, 0, true);
      await Promise.all(outputs.map((t) => t.data()));
      tf.dispose(outputs);
    };
    await decompose(); // compiles the pipeline
    const repeats = 5;
    const start = performance.now();
    for (let i = 0; i < repeats; i++) await decompose();
    const ms = (performance.now() - start) / repeats;
    a.dispose();

    // Every program the webgpu backend runs passes through runWebGPUProgram: count them.
    const backend = tf.backend() as unknown as {
      runWebGPUProgram: (program: WebGPUProgram, ...rest: unknown[]) => unknown;
    };
    const original = backend.runWebGPUProgram.bind(backend);
    const keys: string[] = [];
    backend.runWebGPUProgram = (program, ...rest) => {
      keys.push(program.shaderKey ?? 'unknown');
      return original(program, ...rest);
    };
    const shifted = tf.tensor2d(
      kernel(randomMatrix(rng, 64, 16), { sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 0 }).map((row) =>
        row.map((v) => v - 1),
      ),
    );
    let forward = 0;
    try {
      const { value, grad } = tf.tidy(() =>
        tf.valueAndGrad((k: tf.Tensor) => {
          const h = renyiEntropyOfShiftedKernel(k as tf.Tensor2D, 1.01);
          forward = keys.length;
          return h;
        })(shifted),
      );
      await Promise.all([value.data(), grad.data()]);
      tf.dispose([value, grad]);
    } finally {
      backend.runWebGPUProgram = original;
      shifted.dispose();
    }
    const eigen = keys.filter((k) => k.startsWith('mimirJacobiEigen')).length;
    console.log(
      `info (SwiftShader): one N = 64 eigendecomposition (values and vectors) in ${ms.toFixed(1)} ms, read back included; ` +
        `one Renyi entropy (N = 64) from K - 1, value and gradient: ${keys.length} dispatches, ${forward} forward ` +
        `(${eigen} Jacobi, 3 copies out of its packed output, the rest element-wise ops and sums) and ${keys.length - forward} backward`,
    );
    expect(eigen).toBe(1);
  }, 120_000);
});
