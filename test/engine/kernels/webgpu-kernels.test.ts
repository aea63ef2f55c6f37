import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { columnSums, engineKernelsAvailable, gelu, geluWithSlope, gemm } from '../../../src/engine/kernels';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { setWebgpuKernelSettings } from '../../../src/engine/webgpu/variants';
import { Rng } from '../model/fixtures';
import { useSwiftShader } from '../webgpu/swiftshader';
import {
  checkGemmFp32,
  checkLayerNorm,
  compiledShaderKeys,
  GEMM_EDGE_SIZES,
  LAYERNORM_EDGE_SIZES,
  layerNormShaders,
  read,
  runSmallLayerNorm,
} from '../webgpu/webgpu-checks';
import { erf64, randomMat, relativeError, tensorOf } from './kernel-suite';

describe('the engine WGSL kernels on webgpu (SwiftShader)', () => {
  beforeAll(async () => {
    useSwiftShader();
    const report = await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('webgpu');
    expect(report.webgpu.adapter?.features).toContain('subgroups');
    expect(report.webgpu.adapter?.features).not.toContain('shader-f16');
  });

  it('are the ones the model layers call on webgpu', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(engineKernelsAvailable()).toBe(true);
  });

  it.each(GEMM_EDGE_SIZES)(
    'gemm %i x %i (depth %i) in every transpose matches float64, with and without bias',
    async (m, n, k) => {
      clearDispatchedWebgpuShaders();
      await checkGemmFp32(m, n, k);
      expect(dispatchedWebgpuShaders().some((key) => key.includes('_f16'))).toBe(false);
    },
  );

  it('gemm with precision fp16 refuses a device without shader-f16 (SwiftShader), saying what to do', () => {
    expect(tf.backend()).toBeDefined();
    setWebgpuKernelSettings({ precision: 'fp16' });
    try {
      tf.tidy(() => {
        expect(() => gemm(tf.zeros([3, 4]), tf.zeros([4, 2]))).toThrow(
          /needs a WebGPU device with the 'shader-f16' feature.*use precision fp32/,
        );
      });
    } finally {
      setWebgpuKernelSettings({ precision: 'fp32' });
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
    clearDispatchedWebgpuShaders();
    await runSmallLayerNorm();
    expect(dispatchedWebgpuShaders().sort()).toEqual(layerNormShaders(true));
    for (const key of layerNormShaders(true))
      expect(compiledShaderKeys().some((c) => c.startsWith(`${key}_`))).toBe(true);
    setWebgpuKernelSettings({ subgroups: false });
    try {
      clearDispatchedWebgpuShaders();
      await runSmallLayerNorm();
      expect(dispatchedWebgpuShaders().sort()).toEqual(layerNormShaders(false));
    } finally {
      setWebgpuKernelSettings({ subgroups: true });
    }
  });

  // Both variants of the row sums (SwiftShader's subgroups are 4 wide).
  it.each(
    LAYERNORM_EDGE_SIZES.flatMap(([rows, cols]) => [
      [rows, cols, 'subgroups'] as const,
      [rows, cols, 'plain'] as const,
    ]),
  )('LayerNorm forward, input and parameter gradients match float64 (%i x %i, %s)', async (rows, cols, variant) => {
    setWebgpuKernelSettings({ subgroups: variant === 'subgroups' });
    try {
      clearDispatchedWebgpuShaders();
      await checkLayerNorm(rows, cols);
      expect(dispatchedWebgpuShaders().includes('mimirLayerNormGrad_subgroups')).toBe(variant === 'subgroups');
    } finally {
      setWebgpuKernelSettings({ subgroups: true });
    }
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
