import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { gemm, layerNormGradKernel, layerNormKernel } from '../../../src/engine/kernels';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { GEMM_DEPTH, GEMM_TILE } from '../../../src/engine/webgpu/programs';
import {
  checkGemm,
  checkLayerNorm as checkLayerNormOn,
  randomMat,
  tensorOf,
  transpose,
  type Mat,
} from '../kernels/kernel-suite';
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

/** fp32 GEMM in every transpose against float64, within 1e-6 relative (the kernel suite's check). */
export const checkGemmFp32 = (m: number, n: number, k: number): Promise<void> => checkGemm(read, m, n, k);

/** Row sizes of LayerNorm's 64-thread rows: columns below, at and past 64 and 128. */
export const LAYERNORM_EDGE_SIZES: [number, number][] = [
  [37, 27],
  [3, 64],
  [5, 130],
];

/** LayerNorm forward, input and parameter gradients against float64 (the kernel suite's check). */
export const checkLayerNorm = (rows: number, cols: number): Promise<void> => checkLayerNormOn(read, rows, cols);

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
