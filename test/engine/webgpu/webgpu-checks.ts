import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { gemm, layerNormGradKernel, layerNormKernel, layerNormParamGradsKernel } from '../../../src/engine/kernels';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { GEMM_DEPTH, GEMM_TILE } from '../../../src/engine/webgpu/programs';
import { multiply, randomMat, relativeError, tensorOf, transpose, type Mat } from '../kernels/kernel-suite';
import { isRecord } from '../../../src/shared/unknown-value';
import { Rng } from '../model/fixtures';

/**
 * The float64 checks of the engine's WGSL kernels, shared by the adapters they run on (SwiftShader,
 * lavapipe) and by their variants (plain, subgroups, f16 tiles).
 */

/** Reads tensors asynchronously (webgpu under Node has no synchronous read) and disposes them. */
export async function read(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(tensors.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(tensors);
  // A shader or bind group the device refused leaves garbage, not an exception: fail on it.
  expect(takeWebgpuDeviceErrors()).toEqual([]);
  return out;
}

/**
 * GEMM sizes crossing every edge of the tiling: 64 x 64 output tiles, 16-deep K steps; operands
 * with row lengths that are multiples of 4 are read as vec4, the others as scalars.
 */
export const GEMM_EDGE_SIZES: [number, number, number][] = [
  [1, 1, 1],
  [5, 7, 3],
  [GEMM_TILE, GEMM_TILE, GEMM_DEPTH],
  [GEMM_TILE + 1, 2 * GEMM_TILE + 1, GEMM_DEPTH + 1],
  [130, 63, 47],
  [70, 200, 300],
  // Row lengths that are multiples of 4 (vec4 loads) while crossing the tile edges.
  [68, 132, 20],
  [4, 8, 4],
];

export const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

export interface GemmCase {
  a: Mat;
  b: Mat;
  bias: Mat;
}

export function gemmCase(m: number, n: number, k: number): GemmCase {
  const rng = new Rng(m * 1000 + n + k);
  return { a: randomMat(m, k, rng), b: randomMat(k, n, rng), bias: randomMat(1, n, rng) };
}

/** The engine's gemm of the case, without and with bias, in the four transposes. */
export async function runGemm(
  c: GemmCase,
): Promise<{ transposeA: boolean; transposeB: boolean; plain: Float32Array; biased: Float32Array }[]> {
  const out = [];
  for (const [transposeA, transposeB] of TRANSPOSES) {
    const ta = tensorOf(transposeA ? transpose(c.a) : c.a);
    const tb = tensorOf(transposeB ? transpose(c.b) : c.b);
    const tbias = tf.tensor1d(Float32Array.from(c.bias.data));
    const plain = gemm(ta, tb, { transposeA, transposeB });
    expect(plain.shape).toEqual([c.a.rows, c.b.cols]);
    const biased = gemm(ta, tb, { transposeA, transposeB, bias: tbias });
    const [p, q] = await read([plain, biased, ta, tb, tbias]);
    out.push({ transposeA, transposeB, plain: p ?? new Float32Array(), biased: q ?? new Float32Array() });
  }
  return out;
}

export const withBias = (product: Mat, bias: Mat) =>
  Float64Array.from(product.data, (v, i) => v + (bias.data[i % product.cols] ?? 0));

/** fp32 GEMM in every transpose against float64, within 1e-6 relative. */
export async function checkGemmFp32(m: number, n: number, k: number): Promise<void> {
  const c = gemmCase(m, n, k);
  const want = multiply(c.a, c.b);
  for (const r of await runGemm(c)) {
    const where = `transposeA ${r.transposeA}, transposeB ${r.transposeB}`;
    expect(relativeError(r.plain, want.data), where).toBeLessThan(1e-6);
    expect(relativeError(r.biased, withBias(want, c.bias)), where).toBeLessThan(1e-6);
  }
}

/** Row sizes of LayerNorm's 64-thread rows: columns below, at and past 64 and 128. */
export const LAYERNORM_EDGE_SIZES: [number, number][] = [
  [37, 27],
  [3, 64],
  [5, 130],
];

/** LayerNorm forward, input and parameter gradients against float64. */
export async function checkLayerNorm(rows: number, cols: number): Promise<void> {
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

const LAYERNORM_SHADERS = ['mimirLayerNorm_y', 'mimirLayerNorm_xhat', 'mimirLayerNorm_rstd', 'mimirLayerNormGrad'];

/** The shader keys LayerNorm's forward and input gradient dispatch in a variant. */
export const layerNormShaders = (subgroups: boolean) =>
  LAYERNORM_SHADERS.map((k) => (subgroups ? `${k}_subgroups` : k)).sort();

/** Runs LayerNorm forward and input gradient once on a small input. */
export async function runSmallLayerNorm(): Promise<void> {
  const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
  const w = tf.ones([3]) as tf.Tensor1D;
  const b = tf.zeros([3]) as tf.Tensor1D;
  const out = layerNormKernel(x, w, b, 1e-6);
  const dx = layerNormGradKernel(x, out[1], out[2], w);
  await read([...out, dx, x, w, b]);
}

/** The shader keys tfjs compiled a pipeline for (on first dispatch): the key names the variant. */
export function compiledShaderKeys(): string[] {
  const backend: unknown = tf.backend();
  return Object.keys(isRecord(backend) && isRecord(backend.pipelineCache) ? backend.pipelineCache : {});
}
