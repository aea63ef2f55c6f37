import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attentionSettings,
  decode,
  disposeParams,
  encodeVisible,
  initClassifierParams,
  maeForward,
  orderedTargets,
  reconstructionLoss,
  visiblePatches,
  type AttentionStrategy,
} from '../../../src/engine/model';
import { useBackend } from '../../helpers/backend';
import { microConfig, randomizeParams, Rng } from './fixtures';
import * as ref from './reference';
import {
  centralDiff,
  checkedGradients,
  disposeProbeSubject,
  expectClose,
  probeClassifier,
  probeParams,
  probeSubject,
  PROBES,
  type ProbeSubject,
} from './gradient-check';

describe.each(['cpu', 'wasm'] as const)('gradients on %s', (backend) => {
  const config = microConfig();
  const n = 2;
  let probe: ProbeSubject;

  beforeAll(async () => {
    await useBackend(backend);
    probe = probeSubject(config, n, { seed: 21, maskRatio: 0.75 });
  });

  afterAll(() => disposeProbeSubject(probe));

  it.each([
    ...(backend === 'wasm'
      ? [
          ['kernels', 'kept'],
          ['kernels', 'recomputed'],
        ]
      : []),
    ['sliced', 'kept'],
    ['sliced', 'recomputed'],
    ['batched', ''],
  ] as [AttentionStrategy, string][])(
    'MAE loss: every parameter gets a gradient, matching finite differences (%s attention %s)',
    async (attention, probabilities) => {
      const { params, refParams, images, mask, visible } = probe;
      attentionSettings.savedProbabilitiesBudget = probabilities === 'recomputed' ? 0 : 64 * 1024 * 1024;
      const { value, grads } = tf.variableGrads(
        () => maeForward(params, config, images.tensor, mask, { attention }).loss,
      );
      const byName = await checkedGradients(params, grads);
      const { analytic, numeric } = probeParams(
        PROBES,
        (name) => byName.get(name),
        refParams,
        (p) => ref.maeLoss(p, config, images.arrays, visible),
      );
      expectClose(analytic, numeric, `${backend} MAE params (${attention} ${probabilities})`);
      attentionSettings.savedProbabilitiesBudget = 64 * 1024 * 1024;
      tf.dispose([value, grads]);
    },
  );

  it.each([true, false])(
    'gradient w.r.t. a visible-patch perturbation matches finite differences (trainParams %s)',
    (trainParams) => {
      const { params, refParams, images, mask, visible } = probe;
      const rng = new Rng(3);
      const k = 48;
      const deltaValues = Array.from({ length: n * mask.numVisible * k }, () => (rng.uniform() * 2 - 1) * (8 / 255));
      const delta = tf.tensor3d(deltaValues, [n, mask.numVisible, k]);
      const clean = visiblePatches(config, images.tensor, mask);
      const targets = orderedTargets(config, images.tensor, mask);
      const lossOf = (d: tf.Tensor3D) => {
        const latent = encodeVisible(params, config, tf.add(clean, d), mask.visibleIds, { trainParams });
        return reconstructionLoss(decode(params, config, latent, mask, { trainParams }), targets, mask.numVisible);
      };
      const grad = tf.grad((d) => lossOf(d as tf.Tensor3D))(delta);
      expect(grad.shape).toEqual([n, mask.numVisible, k]);
      const g = grad.dataSync();
      const refDelta = (shiftAt: number, s: number) =>
        Array.from({ length: n }, (_, si) =>
          Array.from({ length: mask.numVisible }, (_, t) =>
            Float64Array.from({ length: k }, (_, j) => {
              const flatIndex = (si * mask.numVisible + t) * k + j;
              return (deltaValues[flatIndex] ?? 0) + (flatIndex === shiftAt ? s : 0);
            }),
          ),
        );
      const coords = [0, 17, 47, 100, 4 * 48 + 5, n * mask.numVisible * k - 1];
      const numeric = coords.map((c) =>
        centralDiff((s) => ref.maeLoss(refParams, config, images.arrays, visible, { delta: refDelta(c, s) })),
      );
      expectClose(
        coords.map((c) => g[c] ?? NaN),
        numeric,
        `${backend} visible-patch delta (trainParams ${trainParams})`,
      );
      tf.dispose([delta, clean, targets, grad]);
    },
  );

  it('gradient w.r.t. a whole-image perturbation flows through the patch gather (zero on masked patches)', () => {
    const { params, refParams, images, mask, visible } = probe;
    const size = config.imageSize;
    const delta = tf.randomUniform([n, size, size, 3], -8 / 255, 8 / 255, 'float32', 4) as tf.Tensor4D;
    const deltaValues = Array.from(delta.dataSync());
    const targets = orderedTargets(config, images.tensor, mask);
    const grad = tf.grad((d) => {
      const perturbed = tf.add(images.tensor, d) as tf.Tensor4D;
      const latent = encodeVisible(params, config, visiblePatches(config, perturbed, mask), mask.visibleIds);
      return reconstructionLoss(decode(params, config, latent, mask), targets, mask.numVisible);
    })(delta);
    const g = grad.dataSync();
    const pixelIndex = (s: number, patch: number, a: number, b: number, c: number) => {
      const grid = size / config.patchSize;
      const row = Math.floor(patch / grid) * config.patchSize + a;
      const col = (patch % grid) * config.patchSize + b;
      return ((s * size + row) * size + col) * 3 + c;
    };
    for (let s = 0; s < n; s++) {
      for (const patch of mask.masked[s] ?? []) expect(g[pixelIndex(s, patch, 1, 2, 0)]).toBe(0);
    }
    const coords = [pixelIndex(0, visible[0]?.[0] ?? 0, 0, 0, 0), pixelIndex(1, visible[1]?.[2] ?? 0, 3, 1, 2)];
    const imageSize = size * size * 3;
    const numeric = coords.map((c) =>
      centralDiff((shift) => {
        const perturbed = images.arrays.map((a, s) =>
          a.map((v, i) => v + (deltaValues[s * imageSize + i] ?? 0) + (s * imageSize + i === c ? shift : 0)),
        );
        return ref.maeLoss(refParams, config, perturbed, visible, { cleanImages: images.arrays });
      }),
    );
    expectClose(
      coords.map((c) => g[c] ?? NaN),
      numeric,
      `${backend} whole-image delta`,
    );
    tf.dispose([delta, targets, grad]);
  });

  it('classifier: gradients w.r.t. pixels and parameters match finite differences', () => {
    const { images } = probe;
    const rng = new Rng(8);
    const cls = initClassifierParams(config, 5, rng);
    randomizeParams(cls, rng);
    const probed = probeClassifier(cls, config, images, rng, {
      classes: 5,
      params: [
        ['head.weight', [7]],
        ['head.bias', [2]],
        ['fc_norm.weight', [5]],
        ['blocks.1.attn.qkv.weight', [999]],
        ['patch_embed.proj.weight', [1234]],
        ['cls_token', [0]],
      ],
      pixels: [0, 100, 767, 1500],
    });
    expectClose(probed.params.analytic, probed.params.numeric, `${backend} classifier params`);
    expect(probed.gradients).toBe(cls.size);
    expectClose(probed.pixels.analytic, probed.pixels.numeric, `${backend} classifier pixels`);
    disposeParams(cls);
  });

  it('a forward + backward step leaks no tensor', () => {
    const { params, images, mask } = probe;
    const step = () => {
      const { value, grads } = tf.variableGrads(() => maeForward(params, config, images.tensor, mask).loss);
      tf.dispose([value, grads]);
      const delta = tf.zeros([n, mask.numVisible, 48]) as tf.Tensor3D;
      const lossOf = (d: tf.Tensor) =>
        maeForward(params, config, images.tensor, mask, { delta: d as tf.Tensor3D, trainParams: false }).loss;
      const g = tf.grad(lossOf)(delta);
      tf.dispose([delta, g]);
      const out = maeForward(params, config, images.tensor, mask);
      tf.dispose(out);
    };
    step();
    const before = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytesBefore);
  });
});
