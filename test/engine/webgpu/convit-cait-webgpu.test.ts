import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import {
  disposeParams,
  initMaeParams,
  maeForward,
  randomMasking,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { randomImages, randomizeParams, Rng, toRefParams } from '../model/fixtures';
import { expectClose, probeParams } from '../model/gradient-check';
import type { RefParams } from '../model/reference';
import * as tref from '../model/reference-token-encoders';
import { CASES, config } from '../model/token-encoder-cases';
import { useSwiftShader } from './swiftshader';

// GPSA (ConViT) and CaiT's talking-heads and class attention take their softmax from the engine's
// row kernel on webgpu: their MAE loss and parameter gradients against the float64 references.
describe.each(CASES)('$name on webgpu (SwiftShader) against the float64 reference', (c) => {
  const n = 2;
  let mae: ParamMap;
  let refMae: RefParams;
  let images: ReturnType<typeof randomImages>;
  let mask: PatchMask;
  let visible: number[][];

  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
    const rng = new Rng(31);
    mae = initMaeParams(c.config, rng);
    randomizeParams(mae, rng);
    refMae = toRefParams(mae);
    images = randomImages(rng, n, config);
    mask = randomMasking(rng, n, 16, 0.75, { order: 'shuffled' });
    visible = mask.visible.map((v) => Array.from(v));
  });

  afterAll(() => {
    disposeParams(mae);
    images.tensor.dispose();
    mask.dispose();
  });

  it("MAE loss and parameter gradients match, with the engine's softmax kernels forward and backward", async () => {
    clearDispatchedWebgpuShaders();
    const { value, grads } = tf.variableGrads(() => maeForward(mae, c.config, images.tensor, mask).loss);
    const loss = (await value.data())[0] ?? NaN;
    const want = tref.tokenMaeLoss(refMae, config, c.ref, images.arrays, visible);
    console.info(`webgpu ${c.name} MAE loss ${loss} vs float64 ${want}`);
    expect(Math.abs(loss - want)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
    const byName = new Map<string, Float32Array>();
    for (const [name, v] of mae) {
      const g = grads[v.name];
      expect(g, name).toBeDefined();
      if (!g) continue;
      const data = Float32Array.from(await g.data());
      expect(data.every(Number.isFinite), name).toBe(true);
      const largest = Math.max(...Array.from(data, Math.abs));
      if (c.zeroGradient.test(name)) expect(largest, name).toBeLessThan(1e-6);
      else expect(largest, `${name} has a zero gradient`).toBeGreaterThan(0);
      byName.set(name, data);
    }
    expect(takeWebgpuDeviceErrors()).toEqual([]);
    expect(dispatchedWebgpuShaders()).toEqual(
      expect.arrayContaining(['mimirSoftmax_subgroups', 'mimirSoftmaxGrad_subgroups']),
    );
    const { analytic, numeric } = probeParams(
      c.probes,
      (name) => byName.get(name),
      refMae,
      (p) => tref.tokenMaeLoss(p, config, c.ref, images.arrays, visible),
    );
    expectClose(analytic, numeric, `webgpu ${c.name} MAE params`);
    tf.dispose([value, grads]);
  }, 300_000);
});
