import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import {
  columnSums,
  engineKernelsAvailable,
  gelu,
  geluWithSlope,
  gemm,
  layerNormGradKernel,
  layerNormKernel,
  layerNormParamGradsKernel,
} from '../../../src/engine/kernels';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { setWebgpuKernelSettings } from '../../../src/engine/webgpu/variants';
import { isRecord } from '../../../src/shared/unknown-value';
import { GEMM_DEPTH, GEMM_TILE } from '../../../src/engine/webgpu/programs';
import { Rng } from '../model/fixtures';
import { useSwiftShader } from '../webgpu/swiftshader';
import { erf64, multiply, randomMat, relativeError, tensorOf, transpose } from './kernel-suite';

/** Reads tensors asynchronously (webgpu under Node has no synchronous read) and disposes them. */
async function read(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(tensors.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(tensors);
  // A shader or bind group the device refused leaves garbage, not an exception: fail on it.
  expect(takeWebgpuDeviceErrors()).toEqual([]);
  return out;
}

describe('the engine WGSL kernels on webgpu (SwiftShader)', () => {
  beforeAll(async () => {
    useSwiftShader();
    const report = await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('webgpu');
  });

  it('are the ones the model layers call on webgpu', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(engineKernelsAvailable()).toBe(true);
  });

  // Sizes cross every edge of the GEMM tiling: 64 x 64 output tiles, 16-deep K steps; operands with
  // row lengths that are multiples of 4 are read as vec4, the others as scalars.
  it.each([
    [1, 1, 1],
    [5, 7, 3],
    [GEMM_TILE, GEMM_TILE, GEMM_DEPTH],
    [GEMM_TILE + 1, 2 * GEMM_TILE + 1, GEMM_DEPTH + 1],
    [130, 63, 47],
    [70, 200, 300],
    // Row lengths that are multiples of 4 (vec4 loads) while crossing the tile edges.
    [68, 132, 20],
    [4, 8, 4],
  ])('gemm %i x %i (depth %i) in every transpose matches float64, with and without bias', async (m, n, k) => {
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
  });

  it('gemm refuses operands whose inner dimensions differ', () => {
    tf.tidy(() => {
      expect(() => gemm(tf.zeros([3, 4]), tf.zeros([5, 2]))).toThrow(/inner dimensions 4 and 5/);
    });
  });

  it('GELU and its slope match float64 over [-10, 10]', async () => {
    const n = 4003;
    const x = Float32Array.from({ length: n }, (_, i) => Math.fround(-10 + (20 * i) / (n - 1)));
    const tx = tf.tensor1d(x);
    const [value, slopes] = geluWithSlope(tx);
    const [y, y2, slope] = await read([gelu(tx), value, slopes, tx]);
    expect(Array.from(y2 ?? [])).toEqual(Array.from(y ?? []));
    let worstY = 0;
    let worstSlope = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i] ?? 0;
      const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
      const wantSlope = cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
      worstY = Math.max(worstY, Math.abs((y?.[i] ?? NaN) - v * cdf) / Math.max(1, Math.abs(v * cdf)));
      worstSlope = Math.max(worstSlope, Math.abs((slope?.[i] ?? NaN) - wantSlope) / Math.max(1, Math.abs(wantSlope)));
    }
    console.log(
      `webgpu GELU vs float64: worst ${worstY.toExponential(2)} (value), ${worstSlope.toExponential(2)} (slope)`,
    );
    expect(worstY).toBeLessThan(1e-6);
    expect(worstSlope).toBeLessThan(1e-6);
  });

  it('the device has subgroups; LayerNorm runs its subgroup variant there, and the plain one when turned off', async () => {
    // tfjs compiles a pipeline per shader key on first dispatch: the key names the variant.
    const compiled = () => {
      const backend: unknown = tf.backend();
      const cache = isRecord(backend) && isRecord(backend.pipelineCache) ? backend.pipelineCache : {};
      return Object.keys(cache).filter((key) => key.startsWith('mimirLayerNorm'));
    };
    const run = async () => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const w = tf.ones([3]) as tf.Tensor1D;
      const b = tf.zeros([3]) as tf.Tensor1D;
      const out = layerNormKernel(x, w, b, 1e-6);
      const dx = layerNormGradKernel(x, out[1], out[2], w);
      await read([...out, dx, x, w, b]);
    };
    clearDispatchedWebgpuShaders();
    await run();
    const subgroupKeys = ['mimirLayerNorm_y', 'mimirLayerNorm_xhat', 'mimirLayerNorm_rstd', 'mimirLayerNormGrad'].map(
      (k) => `${k}_subgroups`,
    );
    expect(dispatchedWebgpuShaders().sort()).toEqual([...subgroupKeys].sort());
    for (const key of subgroupKeys) expect(compiled().some((c) => c.startsWith(`${key}_`))).toBe(true);
    setWebgpuKernelSettings({ subgroups: false });
    try {
      clearDispatchedWebgpuShaders();
      await run();
      expect(dispatchedWebgpuShaders().sort()).toEqual(
        ['mimirLayerNorm_y', 'mimirLayerNorm_xhat', 'mimirLayerNorm_rstd', 'mimirLayerNormGrad'].sort(),
      );
    } finally {
      setWebgpuKernelSettings({ subgroups: true });
    }
  });

  // Rows of 64 threads (SwiftShader's subgroups are 4 wide): columns below, at and past 64 and 128;
  // both variants of the row sums.
  it.each([
    [37, 27, 'subgroups'],
    [3, 64, 'subgroups'],
    [5, 130, 'subgroups'],
    [37, 27, 'plain'],
    [3, 64, 'plain'],
    [5, 130, 'plain'],
  ] as const)(
    'LayerNorm forward, input and parameter gradients match float64 (%i x %i, %s)',
    async (rows, cols, variant) => {
      setWebgpuKernelSettings({ subgroups: variant === 'subgroups' });
      clearDispatchedWebgpuShaders();
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
      expect(dispatchedWebgpuShaders().includes('mimirLayerNormGrad_subgroups')).toBe(variant === 'subgroups');
      setWebgpuKernelSettings({ subgroups: true });
    },
  );

  // 16 columns per workgroup, 16 row lanes: sizes below, at and past both.
  it.each([
    [70, 257],
    [16, 16],
    [1, 3],
    [300, 17],
  ])('column sums match float64 (%i x %i)', async (rows, cols) => {
    const x = randomMat(rows, cols, new Rng(rows * cols));
    const [sums] = await read([columnSums(tensorOf(x))]);
    const want = new Float64Array(cols);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < cols; j++) want[j] = (want[j] ?? 0) + (x.data[r * cols + j] ?? 0);
    expect(relativeError(sums ?? new Float32Array(), want)).toBeLessThan(1e-6);
  });
});
