import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { engineKernelsAvailable } from '../../../src/engine/kernels';
import { resolveAttentionStrategy } from '../../../src/engine/model/attention';
import { maeForward } from '../../../src/engine/model';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import {
  checkedGradients,
  disposeProbeSubject,
  expectClose,
  probeParams,
  probeSubject,
  PROBES,
  type ProbeSubject,
} from '../model/gradient-check';
import { microConfig } from '../model/fixtures';
import * as ref from '../model/reference';
import { useSwiftShader } from './swiftshader';

describe('the model on webgpu (SwiftShader) against the float64 reference', () => {
  const config = microConfig();
  const n = 2;
  let probe: ProbeSubject;

  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
    expect(engineKernelsAvailable()).toBe(true);
    expect(resolveAttentionStrategy('auto')).toBe('flash');
    probe = probeSubject(config, n, { seed: 21, maskRatio: 0.75 });
  });

  afterAll(() => disposeProbeSubject(probe));

  it('MAE loss and every parameter gradient match the float64 reference (WGSL GEMM, LayerNorm, GELU, flash attention kernels)', async () => {
    const { params, refParams, images, mask, visible } = probe;
    const { value, grads } = tf.variableGrads(() => maeForward(params, config, images.tensor, mask).loss);
    const loss = (await value.data())[0] ?? NaN;
    const want = ref.maeLoss(refParams, config, images.arrays, visible);
    console.log(`webgpu MAE loss ${loss}, float64 ${want}`);
    expect(Math.abs(loss - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    const byName = await checkedGradients(params, grads);
    expect(takeWebgpuDeviceErrors()).toEqual([]);
    const { analytic, numeric } = probeParams(
      PROBES,
      (name) => byName.get(name),
      refParams,
      (p) => ref.maeLoss(p, config, images.arrays, visible),
    );
    expectClose(analytic, numeric, 'webgpu MAE params');
    tf.dispose([value, grads]);
  }, 300_000);
});
