import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { runPrecision, useWebgpuPrecision } from '../../../src/engine/webgpu/variants';
import { multiply, type Mat } from '../kernels/kernel-suite';
import { useLavapipe } from './lavapipe';
import { checkSoftmax, SOFTMAX_ROW_LENGTHS, softmaxShaders } from './softmax-checks';
import {
  checkLayerNorm,
  gemmCase,
  GEMM_EDGE_SIZES,
  LAYERNORM_EDGE_SIZES,
  layerNormShaders,
  runGemm,
  runSmallLayerNorm,
  withBias,
} from './webgpu-checks';

/** Unit roundoff of f32, and of f16 for normal f16 values; below 2^-14 f16 rounds to a multiple of 2^-24. */
const U32 = 2 ** -24;
const U16 = 2 ** -11;
const roundF16 = (m: Mat): Mat => ({ ...m, data: Float64Array.from(m.data, (v) => Math.f16round(v)) });
const absMat = (m: Mat): Mat => ({ ...m, data: Float64Array.from(m.data, (v) => Math.abs(v)) });

/**
 * The kernels' shader-f16 and subgroup variants on lavapipe (Mesa 25), the adapter here that has
 * shader-f16 (SwiftShader has not).
 */
describe('the engine WGSL kernel variants on webgpu (lavapipe: shader-f16, 8-wide subgroups)', () => {
  beforeAll(async () => {
    useLavapipe();
    const report = await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('webgpu');
    expect(report.webgpu.adapter?.description).toMatch(/llvmpipe/);
    expect(report.webgpu.adapter?.features).toEqual(expect.arrayContaining(['shader-f16', 'subgroups']));
    // Doctor's candidate line says which variants the kernels run.
    expect(report.candidates.find((c) => c.backend === 'webgpu')?.reason).toMatch(
      /kernels: GEMM fp32; reductions by subgroups/,
    );
  });

  /**
   * With precision fp16 the tiles hold f16(a) and f16(b); products and sums are f32. Per element,
   * with S16 = sum_k |f16(a)||f16(b)| and C16 the float64 product of the rounded inputs:
   *   |got - C16 - bias| <= (K + 2) u32 (S16 + |bias|)          (f32 fma accumulation, bias add)
   * and against the exact product C, |f16(x) - x| <= u16 |x| + 2^-25 for |x| <= 1 gives
   *   |C16 - C| <= sum_k (2 u16 + u16^2) |a||b| + 2^-24 (|a| + |b|) + 2^-50.
   * The data must tell the variants apart: somewhere |C16 - C| exceeds the first bound, so fp32
   * tiles would fail it.
   */
  it.each(GEMM_EDGE_SIZES)(
    'gemm %i x %i (depth %i) with f16 tiles matches float64 within the f16 rounding bound, every transpose, with and without bias',
    async (m, n, k) => {
      // As a run whose config says engine: {name: 'tfjs', precision: 'fp16'} sets it.
      useWebgpuPrecision(runPrecision({ name: 'tfjs', precision: 'fp16' }), 'webgpu');
      try {
        clearDispatchedWebgpuShaders();
        const c = gemmCase(m, n, k);
        const exact = multiply(c.a, c.b);
        const rounded = multiply(roundF16(c.a), roundF16(c.b));
        const s16 = multiply(absMat(roundF16(c.a)), absMat(roundF16(c.b)));
        const sAbs = multiply(absMat(c.a), absMat(c.b));
        // sum_k (|a_ik| + |b_kj|): row sums of |a| plus column sums of |b|.
        const rowA = multiply(absMat(c.a), { rows: k, cols: 1, data: new Float64Array(k).fill(1) }).data;
        const colB = multiply({ rows: 1, cols: k, data: new Float64Array(k).fill(1) }, absMat(c.b)).data;
        let distinguishes = false;
        let worstRelToBound = 0;
        for (const r of await runGemm(c)) {
          for (const [got, bias] of [
            [r.plain, null],
            [r.biased, c.bias],
          ] as const) {
            const want16 = bias ? withBias(rounded, bias) : rounded.data;
            const wantExact = bias ? withBias(exact, bias) : exact.data;
            for (let e = 0; e < m * n; e++) {
              const i = Math.floor(e / n);
              const j = e % n;
              const b = Math.abs(bias?.data[j] ?? 0);
              const accumulation = (k + 2) * U32 * ((s16.data[e] ?? 0) + b);
              const rounding =
                (2 * U16 + U16 * U16) * (sAbs.data[e] ?? 0) + U32 * ((rowA[i] ?? 0) + (colB[j] ?? 0)) + k * 2 ** -50;
              const g = got[e] ?? NaN;
              const where = `transposeA ${r.transposeA}, transposeB ${r.transposeB}, bias ${bias !== null}, element ${i},${j}`;
              expect(Math.abs(g - (want16[e] ?? 0)), where).toBeLessThanOrEqual(accumulation);
              expect(Math.abs(g - (wantExact[e] ?? 0)), where).toBeLessThanOrEqual(accumulation + rounding);
              worstRelToBound = Math.max(
                worstRelToBound,
                Math.abs(g - (wantExact[e] ?? 0)) / (accumulation + rounding),
              );
              if (Math.abs((want16[e] ?? 0) - (wantExact[e] ?? 0)) > accumulation) distinguishes = true;
            }
          }
        }
        console.log(
          `f16-tile gemm ${m}x${n}x${k}: worst error vs float64 ${(100 * worstRelToBound).toFixed(1)}% of the f16 bound`,
        );
        expect(distinguishes).toBe(true);
        const keys = dispatchedWebgpuShaders();
        expect(keys.length).toBeGreaterThan(0);
        expect(
          keys.every((key) => /^mimirGemm_[nt]{2}[14]{2}_f16(_bias)?$/.test(key)),
          keys.join(', '),
        ).toBe(true);
      } finally {
        useWebgpuPrecision('fp32', 'webgpu');
      }
    },
  );

  it('LayerNorm runs its subgroup variant on 8-wide subgroups', async () => {
    clearDispatchedWebgpuShaders();
    await runSmallLayerNorm();
    expect(dispatchedWebgpuShaders().sort()).toEqual(layerNormShaders(true));
  });

  it.each(LAYERNORM_EDGE_SIZES)(
    'LayerNorm (subgroup variant) forward, input and parameter gradients match float64 (%i x %i)',
    async (rows, cols) => {
      clearDispatchedWebgpuShaders();
      await checkLayerNorm(rows, cols);
      expect(dispatchedWebgpuShaders()).toContain('mimirLayerNormGrad_subgroups');
    },
  );

  it.each(SOFTMAX_ROW_LENGTHS)(
    'softmax and log-softmax (subgroup variant), values and gradients, match float64 (row length %i)',
    async (cols) => {
      clearDispatchedWebgpuShaders();
      const errors = await checkSoftmax(cols);
      console.log(`lavapipe softmax ${cols} vs float64: ${JSON.stringify(errors)}`);
      expect(dispatchedWebgpuShaders().sort()).toEqual(softmaxShaders(true));
    },
  );
});
