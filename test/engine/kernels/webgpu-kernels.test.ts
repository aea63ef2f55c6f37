import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { columnSums, engineKernelsAvailable, gelu, geluWithSlope } from '../../../src/engine/kernels';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { GEMM_DEPTH, GEMM_TILE } from '../../../src/engine/webgpu/programs';
import { Rng } from '../model/fixtures';
import { useSwiftShader } from '../webgpu/swiftshader';
import { erf64, kernelSuite, randomMat, relativeError, tensorOf } from './kernel-suite';

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

  kernelSuite({
    read,
    // Sizes cross every edge of the GEMM tiling: 64 x 64 output tiles, 16-deep K steps; operands with
    // row lengths that are multiples of 4 are read as vec4, the others as scalars.
    gemmSizes: [
      [1, 1, 1],
      [5, 7, 3],
      [GEMM_TILE, GEMM_TILE, GEMM_DEPTH],
      [GEMM_TILE + 1, 2 * GEMM_TILE + 1, GEMM_DEPTH + 1],
      [130, 63, 47],
      [70, 200, 300],
      // Row lengths that are multiples of 4 (vec4 loads) while crossing the tile edges.
      [68, 132, 20],
      [4, 8, 4],
    ],
    // Rows of 64 threads: columns below, at and past 64 and 128.
    layerNormSizes: [
      [37, 27],
      [3, 64],
      [5, 130],
    ],
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
