import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerThreadedWasm } from '../../../src/engine/wasm-threads';
import {
  attentionApply,
  attentionBackward,
  attentionProbabilities,
  gelu,
  geluWithSlope,
  gemm,
  layerNormGradKernel,
  layerNormKernel,
  layerNormParamGradsKernel,
  columnSums,
  wasmKernelThreads,
} from '../../../src/engine/kernels';
import { KERNELS_SOURCE_SHA256 } from '../../../src/engine/kernels/kernels-wasm';
import { useBackend } from '../../helpers/backend';
import { Rng } from '../model/fixtures';

/** Row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function randomMat(rows: number, cols: number, rng: Rng): Mat {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(rng.uniform() * 2 - 1);
  return { rows, cols, data };
}

export function transpose(m: Mat): Mat {
  const data = new Float64Array(m.rows * m.cols);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) data[j * m.rows + i] = m.data[i * m.cols + j] ?? 0;
  return { rows: m.cols, cols: m.rows, data };
}

export function multiply(a: Mat, b: Mat): Mat {
  const data = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++)
    for (let k = 0; k < a.cols; k++) {
      const x = a.data[i * a.cols + k] ?? 0;
      for (let j = 0; j < b.cols; j++)
        data[i * b.cols + j] = (data[i * b.cols + j] ?? 0) + x * (b.data[k * b.cols + j] ?? 0);
    }
  return { rows: a.rows, cols: b.cols, data };
}

export const tensorOf = (m: Mat) => tf.tensor2d(Float32Array.from(m.data), [m.rows, m.cols]);

/** Largest |got - want| relative to the largest |want|. */
export function relativeError(got: Float32Array | Int32Array | Uint8Array, want: Float64Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs((got[i] ?? NaN) - (want[i] ?? 0)));
    scale = Math.max(scale, Math.abs(want[i] ?? 0));
  }
  return err / scale;
}

/**
 * erf in float64: its Taylor series for |x| <= 3 (cancellation leaves about 1e-13), beyond that
 * 1 - erfc(x) with erfc's asymptotic series (erfc(3) = 2.2e-5, known there to about 1e-8).
 */
export function erf64(x: number): number {
  if (Math.abs(x) > 3) {
    const z = 1 / (2 * x * x);
    const erfc = (Math.exp(-x * x) / (Math.abs(x) * Math.sqrt(Math.PI))) * (1 - z + 3 * z * z - 15 * z * z * z);
    return Math.sign(x) * (1 - erfc);
  }
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Reads the tensors' values and disposes them (webgpu under Node has no synchronous read). */
export type ReadTensors = (tensors: tf.Tensor[]) => Promise<Float32Array[]>;

/** gemm m x n (depth k) in every transpose, with and without bias, against float64 within 1e-6 relative. */
export async function checkGemm(read: ReadTensors, m: number, n: number, k: number): Promise<void> {
  const rng = new Rng(m * 1000 + n + k);
  const a = randomMat(m, k, rng);
  const b = randomMat(k, n, rng);
  const bias = randomMat(1, n, rng);
  const want = multiply(a, b);
  const withBias = Float64Array.from(want.data, (v, i) => v + (bias.data[i % n] ?? 0));
  for (const [transposeA, transposeB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    const ta = tensorOf(transposeA ? transpose(a) : a);
    const tb = tensorOf(transposeB ? transpose(b) : b);
    const tbias = tf.tensor1d(Float32Array.from(bias.data));
    const plain = gemm(ta, tb, { transposeA, transposeB });
    expect(plain.shape).toEqual([m, n]);
    const biased = gemm(ta, tb, { transposeA, transposeB, bias: tbias });
    const [p, q] = await read([plain, biased, ta, tb, tbias]);
    const where = `transposeA ${transposeA}, transposeB ${transposeB}`;
    expect(relativeError(p ?? new Float32Array(), want.data), where).toBeLessThan(1e-6);
    expect(relativeError(q ?? new Float32Array(), withBias), where).toBeLessThan(1e-6);
  }
}

/** LayerNorm forward, input gradient and parameter gradients of rows x cols against float64. */
export async function checkLayerNorm(read: ReadTensors, rows: number, cols: number): Promise<void> {
  const eps = 1e-6;
  const rng = new Rng(rows + cols);
  const x = randomMat(rows, cols, rng);
  const dy = randomMat(rows, cols, rng);
  const w = randomMat(1, cols, rng);
  const b = randomMat(1, cols, rng);
  const w1 = tf.tensor1d(Float32Array.from(w.data));
  const b1 = tf.tensor1d(Float32Array.from(b.data));
  const tx = tensorOf(x);
  const g = tensorOf(dy);
  const [out, xhat, rstd] = layerNormKernel(tx, w1, b1, eps);
  const dx = layerNormGradKernel(g, xhat, rstd, w1);
  const [dw, db] = layerNormParamGradsKernel(g, xhat);
  const [y, dxv, dwv, dbv] = await read([out, dx, dw, db, xhat, rstd, w1, b1, tx, g]);
  const want = { y: new Float64Array(rows * cols), dx: new Float64Array(rows * cols) };
  const wantDw = new Float64Array(cols);
  const wantDb = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const xr = Array.from(x.data.subarray(r * cols, (r + 1) * cols));
    const mean = xr.reduce((acc, v) => acc + v, 0) / cols;
    const rs = 1 / Math.sqrt(xr.reduce((acc, v) => acc + (v - mean) ** 2, 0) / cols + eps);
    const h = xr.map((v) => (v - mean) * rs);
    const gw = h.map((_, j) => (dy.data[r * cols + j] ?? 0) * (w.data[j] ?? 0));
    const mg = gw.reduce((acc, v) => acc + v, 0) / cols;
    const mgx = gw.reduce((acc, v, j) => acc + v * (h[j] ?? 0), 0) / cols;
    for (let j = 0; j < cols; j++) {
      const hj = h[j] ?? 0;
      want.y[r * cols + j] = hj * (w.data[j] ?? 0) + (b.data[j] ?? 0);
      want.dx[r * cols + j] = rs * ((gw[j] ?? 0) - mg - hj * mgx);
      wantDw[j] = (wantDw[j] ?? 0) + (dy.data[r * cols + j] ?? 0) * hj;
      wantDb[j] = (wantDb[j] ?? 0) + (dy.data[r * cols + j] ?? 0);
    }
  }
  expect(relativeError(y ?? new Float32Array(), want.y)).toBeLessThan(1e-6);
  expect(relativeError(dxv ?? new Float32Array(), want.dx)).toBeLessThan(1e-5);
  expect(relativeError(dwv ?? new Float32Array(), wantDw)).toBeLessThan(1e-6);
  expect(relativeError(dbv ?? new Float32Array(), wantDb)).toBeLessThan(1e-6);
}

/** Where kernelSuite runs the engine kernels: the backend, already set up by the caller's beforeAll. */
export interface KernelBackend {
  read: ReadTensors;
  /** gemm sizes [m, n, k] that cross every blocking edge of the backend's GEMM. */
  gemmSizes: readonly (readonly [number, number, number])[];
  /** LayerNorm sizes [rows, columns] that cross the backend's row blocking. */
  layerNormSizes: readonly (readonly [number, number])[];
}

/**
 * The float64 checks every backend's engine kernels pass (checkGemm, gemm's refusal of mismatched
 * operands, checkLayerNorm), registered in the caller's describe.
 */
export function kernelSuite(backend: KernelBackend): void {
  it.each(backend.gemmSizes)(
    'gemm %i x %i (depth %i) in every transpose matches float64, with and without bias',
    (m, n, k) => checkGemm(backend.read, m, n, k),
  );

  it('gemm refuses operands whose inner dimensions differ', () => {
    tf.tidy(() => {
      expect(() => gemm(tf.zeros([3, 4]), tf.zeros([5, 2]))).toThrow(/inner dimensions 4 and 5/);
    });
  });

  it.each(backend.layerNormSizes)(
    'LayerNorm forward, input and parameter gradients match float64 (%i x %i)',
    (rows, cols) => checkLayerNorm(backend.read, rows, cols),
  );
}

/**
 * The wasm backend's kernelSuite: synchronous reads; gemm sizes cross every blocking edge of kernels.c
 * (MR 4, NR 8, KC 256, MC 128, NC 384).
 */
const wasmBackend: KernelBackend = {
  read: async (tensors) => {
    const out = tensors.map((t) => Float32Array.from(t.dataSync()));
    tf.dispose(tensors);
    return out;
  },
  gemmSizes: [
    [1, 1, 1],
    [5, 7, 3],
    [130, 390, 260],
    [257, 257, 64],
    [257, 64, 257],
    [300, 200, 520],
    [2100, 24, 40],
  ],
  layerNormSizes: [[37, 27]],
};

/**
 * The kernels' tests, on one thread (tfjs-wasm's stock build) or on `threads` threads (its
 * multi-threaded build, shared memory; one test file per setting: the build is chosen once per process).
 */
export function wasmKernelSuite(threads: number): void {
  describe(`the engine wasm kernels on ${threads} thread(s)`, () => {
    beforeAll(async () => {
      if (threads > 1) {
        const registration = await registerThreadedWasm(threads);
        if (!registration.ok) throw new Error(`threaded wasm did not start: ${registration.reason}`);
      }
      await useBackend('wasm');
    });

    it('are built from the kernels.c in the tree (run scripts/build-kernels.sh after editing it)', () => {
      const source = readFileSync(path.join(__dirname, '../../../src/engine/kernels/kernels.c'));
      expect(createHash('sha256').update(source).digest('hex')).toBe(KERNELS_SOURCE_SHA256);
    });

    it(`run on the wasm backend on ${threads} thread(s)`, () => {
      expect(wasmKernelThreads()).toBe(threads);
    });

    kernelSuite(wasmBackend);

    it('GELU and its gradient match float64 (erf by series, exp by Math.exp) over [-10, 10]', () => {
      const n = 4003; // not a multiple of 4: the tail is handled too
      const x = Float32Array.from({ length: n }, (_, i) => Math.fround(-10 + (20 * i) / (n - 1)));
      const dy = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.cos(i)));
      const [y, dx, y2, slope] = tf.tidy(() => {
        const tx = tf.tensor1d(x);
        const [value, slopes] = geluWithSlope(tx);
        // GELU's backward pass: dy * slope (layers.ts).
        return [gelu(tx), tf.mul(tf.tensor1d(dy), slopes), value, slopes].map((t) => t.dataSync());
      }) as [Float32Array, Float32Array, Float32Array, Float32Array];
      expect(Array.from(y2)).toEqual(Array.from(y));
      let worstY = 0;
      let worstDx = 0;
      let worstSlope = 0;
      for (let i = 0; i < n; i++) {
        const v = x[i] ?? 0;
        const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
        const wantY = v * cdf;
        const wantDx = (dy[i] ?? 0) * (cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI));
        worstY = Math.max(worstY, Math.abs((y[i] ?? NaN) - wantY) / Math.max(1, Math.abs(wantY)));
        worstDx = Math.max(worstDx, Math.abs((dx[i] ?? NaN) - wantDx) / Math.max(1, Math.abs(wantDx)));
        const wantSlope = wantDx / (dy[i] ?? 1);
        worstSlope = Math.max(worstSlope, Math.abs((slope[i] ?? NaN) - wantSlope) / Math.max(1, Math.abs(wantSlope)));
      }
      console.log(
        `GELU vs float64: worst error ${worstY.toExponential(2)} (value), ${worstDx.toExponential(2)} (gradient)`,
      );
      expect(worstY).toBeLessThan(1e-6);
      expect(worstDx).toBeLessThan(1e-6);
      expect(worstSlope).toBeLessThan(1e-6);
    });

    it('softmax over rows and column sums match float64 (rows of 257 and 8, large logits)', () => {
      for (const [rows, cols] of [
        [70, 257],
        [5, 8],
        [3, 1],
      ] as const) {
        const rng = new Rng(rows + cols);
        const x = randomMat(rows, cols, rng);
        for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround((x.data[i] ?? 0) * 40);
        const sums = tf.tidy(() => columnSums(tensorOf(x)).dataSync()) as Float32Array;
        const wantSums = new Float64Array(cols);
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < cols; j++) wantSums[j] = (wantSums[j] ?? 0) + (x.data[r * cols + j] ?? 0);
        expect(relativeError(sums, wantSums), `sums ${rows} x ${cols}`).toBeLessThan(1e-6);

        // The softmax runs inside attention's probabilities: one sample, one head of width 1, with
        // integer q and k so that the logits q_i k_j (up to 36 in size) are exact in float32.
        const tokens = cols;
        const qkv = randomMat(tokens, 3, rng);
        for (let i = 0; i < qkv.data.length; i++) qkv.data[i] = Math.round((qkv.data[i] ?? 0) * 6);
        const soft = tf.tidy(() =>
          attentionProbabilities(tensorOf(qkv), { batch: 1, heads: 1 }).dataSync(),
        ) as Float32Array;
        const wantSoft = new Float64Array(tokens * tokens);
        for (let i = 0; i < tokens; i++) {
          const row = Array.from({ length: tokens }, (_, j) => (qkv.data[3 * i] ?? 0) * (qkv.data[3 * j + 1] ?? 0));
          const max = Math.max(...row);
          const e = row.map((v) => Math.exp(v - max));
          const sum = e.reduce((a, v) => a + v, 0);
          e.forEach((v, j) => (wantSoft[i * tokens + j] = v / sum));
        }
        expect(relativeError(soft, wantSoft), `softmax ${tokens} x ${tokens}`).toBeLessThan(1e-6);
      }
    });

    it('attention probabilities, output and backward pass match float64 per sample and head', () => {
      const [batch, tokens, heads, d] = [2, 13, 3, 8];
      const width = heads * d;
      const rng = new Rng(11);
      const qkv = randomMat(batch * tokens, 3 * width, rng);
      const dOut = randomMat(batch * tokens, width, rng);
      const attrs = { batch, heads };
      const [probabilities, out, dqkv] = tf.tidy(() => {
        const q = tensorOf(qkv);
        const p = attentionProbabilities(q, attrs);
        return [
          p.dataSync(),
          attentionApply(p, q, attrs).dataSync(),
          attentionBackward(p, q, tensorOf(dOut), attrs).dataSync(),
        ];
      }) as [Float32Array, Float32Array, Float32Array];

      // float64: per (b, h), S = q k^T / sqrt(d), P = softmax(S), O = P v; gradients by the chain rule.
      const at = (m: Mat, r: number, c: number) => m.data[r * m.cols + c] ?? 0;
      const wantProbabilities = new Float64Array(probabilities.length);
      const wantOut = new Float64Array(out.length);
      const wantGrad = new Float64Array(dqkv.length);
      const scale = 1 / Math.sqrt(d);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const row = (t: number) => b * tokens + t;
          const col = (part: number, j: number) => part * width + h * d + j;
          const P: number[][] = [];
          for (let i = 0; i < tokens; i++) {
            const s = Array.from({ length: tokens }, (_, j) => {
              let dot = 0;
              for (let x = 0; x < d; x++) dot += at(qkv, row(i), col(0, x)) * at(qkv, row(j), col(1, x));
              return dot * scale;
            });
            const max = Math.max(...s);
            const e = s.map((v) => Math.exp(v - max));
            const sum = e.reduce((x, y) => x + y, 0);
            P.push(e.map((v) => v / sum));
            e.forEach((v, j) => (wantProbabilities[((b * heads + h) * tokens + i) * tokens + j] = v / sum));
          }
          for (let i = 0; i < tokens; i++) {
            const p = P[i] ?? [];
            for (let x = 0; x < d; x++) {
              let o = 0;
              for (let j = 0; j < tokens; j++) o += (p[j] ?? 0) * at(qkv, row(j), col(2, x));
              wantOut[row(i) * width + h * d + x] = o;
            }
            // dP_ij = dO_i . v_j; dS_ij = P_ij (dP_ij - sum_l P_il dP_il); dq_i = scale sum_j dS_ij k_j, ...
            const dP = Array.from({ length: tokens }, (_, j) => {
              let s = 0;
              for (let x = 0; x < d; x++) s += at(dOut, row(i), h * d + x) * at(qkv, row(j), col(2, x));
              return s;
            });
            const dot = dP.reduce((acc, v, j) => acc + v * (p[j] ?? 0), 0);
            const dS = dP.map((v, j) => (p[j] ?? 0) * (v - dot));
            for (let j = 0; j < tokens; j++) {
              for (let x = 0; x < d; x++) {
                const gq = row(i) * 3 * width + col(0, x);
                const gk = row(j) * 3 * width + col(1, x);
                const gv = row(j) * 3 * width + col(2, x);
                wantGrad[gq] = (wantGrad[gq] ?? 0) + scale * (dS[j] ?? 0) * at(qkv, row(j), col(1, x));
                wantGrad[gk] = (wantGrad[gk] ?? 0) + scale * (dS[j] ?? 0) * at(qkv, row(i), col(0, x));
                wantGrad[gv] = (wantGrad[gv] ?? 0) + (p[j] ?? 0) * at(dOut, row(i), h * d + x);
              }
            }
          }
        }
      }
      expect(relativeError(probabilities, wantProbabilities)).toBeLessThan(1e-6);
      expect(relativeError(out, wantOut)).toBeLessThan(1e-5);
      expect(relativeError(dqkv, wantGrad)).toBeLessThan(1e-5);
    });
  });
}
