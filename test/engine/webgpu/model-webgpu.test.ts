import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { engineKernelsAvailable } from '../../../src/engine/kernels';
import { resolveAttentionStrategy } from '../../../src/engine/model/attention';
import {
  disposeParams,
  initMaeParams,
  maeForward,
  randomMasking,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { centralDiff, expectClose, PROBES, withShift } from '../model/gradient-check';
import { microConfig, randomImages, randomizeParams, Rng, toRefParams } from '../model/fixtures';
import * as ref from '../model/reference';
import { useSwiftShader } from './swiftshader';

describe('the model on webgpu (SwiftShader) against the float64 reference', () => {
  const config = microConfig();
  const n = 2;
  let params: ParamMap;
  let refParams: ref.RefParams;
  let images: ReturnType<typeof randomImages>;
  let mask: PatchMask;
  let visible: number[][];

  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
    expect(engineKernelsAvailable()).toBe(true);
    expect(resolveAttentionStrategy('auto')).toBe('flash');
    const rng = new Rng(21);
    params = initMaeParams(config, rng);
    randomizeParams(params, rng);
    refParams = toRefParams(params);
    images = randomImages(rng, n, config);
    mask = randomMasking(rng, n, 16, 0.75);
    visible = mask.visible.map((v) => Array.from(v));
  });

  afterAll(() => {
    disposeParams(params);
    images.tensor.dispose();
    mask.dispose();
  });

  it('MAE loss and every parameter gradient match the float64 reference (WGSL GEMM, LayerNorm, GELU, flash attention kernels)', async () => {
    const { value, grads } = tf.variableGrads(() => maeForward(params, config, images.tensor, mask).loss);
    const loss = (await value.data())[0] ?? NaN;
    const want = ref.maeLoss(refParams, config, images.arrays, visible);
    console.log(`webgpu MAE loss ${loss}, float64 ${want}`);
    expect(Math.abs(loss - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    const byName = new Map<string, Float32Array>();
    for (const [name, v] of params) {
      const g = grads[v.name];
      expect(g, name).toBeDefined();
      if (!g) continue;
      const data = Float32Array.from(await g.data());
      expect(data.every(Number.isFinite), name).toBe(true);
      expect(Math.max(...Array.from(data, Math.abs)), `${name} has a zero gradient`).toBeGreaterThan(0);
      byName.set(name, data);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
    const analytic: number[] = [];
    const numeric: number[] = [];
    for (const [name, indices] of PROBES) {
      for (const index of indices) {
        analytic.push(byName.get(name)?.[index] ?? NaN);
        numeric.push(
          centralDiff((s) => ref.maeLoss(withShift(refParams, name, index, s), config, images.arrays, visible)),
        );
      }
    }
    expectClose(analytic, numeric, 'webgpu MAE params');
    tf.dispose([value, grads]);
  }, 300_000);
});
