import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classifierForward,
  classifierParamsFromEncoder,
  convStemForward,
  decode,
  disposeParams,
  encodeVisible,
  encoderInput,
  im2colStride2,
  maeForward,
  orderedTargets,
  reconstructionLoss,
  type ParamMap,
} from '../../../src/engine/model';
import { pretrainStep } from '../../../src/engine/pretrain/step';
import { ModelConfig } from '../../../src/shared/model-config';
import { PretrainConfig } from '../../../src/shared/pretrain-config';
import { useBackend } from '../../helpers/backend';
import { flat, maxAbsDiff, randomizeParams, Rng, toRefParams } from './fixtures';
import * as ref from './reference';
import {
  centralDiff,
  disposeProbeSubject,
  expectClose,
  probeClassifier,
  probeParams,
  probeSubject,
  type ProbeSubject,
} from './gradient-check';

/**
 * ViT + ConvStem on the tfjs engine against the float64 reference (a direct convolution written from
 * torch's Conv2d definition). 24 px images, patch 8: three stride-2 convolutions of 5, 9 and 13
 * channels and a 1x1 projection to width 36, sizes that fall off the GEMM kernel's tiles.
 */
const config = ModelConfig.parse({
  imageSize: 24,
  patchSize: 8,
  width: 36,
  depth: 2,
  heads: 2,
  decoderWidth: 32,
  decoderDepth: 1,
  decoderHeads: 2,
  encoder: { kind: 'convstem', stemChannels: [5, 9, 13] },
});
const L = 9;
const K = 8 * 8 * 3;
/** randomizeParams, then stem kernels at the scale of their fan-in and stem LayerNorm weights near 1. */
function randomizeStem(params: ParamMap, rng: Rng): void {
  randomizeParams(params, rng);
  for (const [name, v] of params) {
    if (!name.startsWith('patch_embed.proj.stem.')) continue;
    const isKernel = v.rank === 4;
    const fanIn = isKernel ? (v.shape[0] ?? 1) * (v.shape[1] ?? 1) * (v.shape[2] ?? 1) : 1;
    const isNormWeight = !isKernel && name.endsWith('.weight');
    const values = Float32Array.from({ length: v.size }, () =>
      isKernel ? rng.normal() / Math.sqrt(fanIn) : (isNormWeight ? 1 : 0) + 0.1 * rng.normal(),
    );
    const t = tf.tensor(values, v.shape);
    v.assign(t);
    t.dispose();
  }
}

const STEM_PROBES: [string, number[]][] = [
  ['patch_embed.proj.stem.0.weight', [0, 71, 134]],
  ['patch_embed.proj.stem.0.bias', [4]],
  ['patch_embed.proj.stem.1.weight', [2]],
  ['patch_embed.proj.stem.1.bias', [3]],
  ['patch_embed.proj.stem.3.weight', [17, 400]],
  ['patch_embed.proj.stem.4.bias', [8]],
  ['patch_embed.proj.stem.6.weight', [5, 1052]],
  ['patch_embed.proj.stem.7.weight', [12]],
  ['patch_embed.proj.stem.9.weight', [0, 467]],
  ['patch_embed.proj.stem.9.bias', [35]],
  ['cls_token', [3]],
  ['blocks.1.attn.qkv.weight', [500]],
  ['decoder_pred.bias', [6]],
];

describe.each(['cpu', 'wasm'] as const)('ViT + ConvStem on %s', (backend) => {
  const n = 2;
  let probe: ProbeSubject;

  beforeAll(async () => {
    await useBackend(backend);
    probe = probeSubject(config, n, { seed: 5, maskRatio: 0.5, randomize: randomizeStem });
  });

  afterAll(() => disposeProbeSubject(probe));

  it("names its parameters as the authors' ConvBlock, kernels HWIO", () => {
    const { params } = probe;
    const stem = [...params].filter(([name]) => name.startsWith('patch_embed.'));
    expect(stem.map(([name, v]) => [name, v.shape])).toEqual([
      ['patch_embed.proj.stem.0.weight', [3, 3, 3, 5]],
      ['patch_embed.proj.stem.0.bias', [5]],
      ['patch_embed.proj.stem.1.weight', [5]],
      ['patch_embed.proj.stem.1.bias', [5]],
      ['patch_embed.proj.stem.3.weight', [3, 3, 5, 9]],
      ['patch_embed.proj.stem.3.bias', [9]],
      ['patch_embed.proj.stem.4.weight', [9]],
      ['patch_embed.proj.stem.4.bias', [9]],
      ['patch_embed.proj.stem.6.weight', [3, 3, 9, 13]],
      ['patch_embed.proj.stem.6.bias', [13]],
      ['patch_embed.proj.stem.7.weight', [13]],
      ['patch_embed.proj.stem.7.bias', [13]],
      ['patch_embed.proj.stem.9.weight', [1, 1, 13, 36]],
      ['patch_embed.proj.stem.9.bias', [36]],
    ]);
  });

  it('stem tokens, MAE latent and loss, and classifier logits match the float64 reference', () => {
    const { params, refParams, images, mask, visible } = probe;
    const tokens = convStemForward(params, config, images.tensor);
    expect(tokens.shape).toEqual([n, L, 36]);
    const refTokens = images.arrays.flatMap((image) => flat(ref.convStem(refParams, config, image)));
    expect(maxAbsDiff(tokens.dataSync(), refTokens)).toBeLessThan(1e-4);

    const out = maeForward(params, config, images.tensor, mask);
    const refLatent = images.arrays.flatMap((image, s) =>
      flat(ref.encoder(refParams, config, ref.patchify(image, config), visible[s] ?? [])),
    );
    expect(maxAbsDiff(out.latent.dataSync(), refLatent)).toBeLessThan(1e-4);
    const refLoss = ref.maeLoss(refParams, config, images.arrays, visible);
    expect(Math.abs((out.loss.dataSync()[0] ?? NaN) - refLoss)).toBeLessThan(1e-4 * Math.max(1, refLoss));

    const rng = new Rng(9);
    const cls = classifierParamsFromEncoder(params, config, 7, rng, { headInitStd: 0.5 });
    const logits = classifierForward(cls, config, images.tensor).logits;
    const refLogits = ref.classifierLogits(toRefParams(cls), config, images.arrays);
    expect(maxAbsDiff(logits.dataSync(), flat(refLogits))).toBeLessThan(1e-4);
    tf.dispose([tokens, out, logits]);
    disposeParams(cls);
  });

  it('im2col: forward equals the direct gathering and its gradient (col2im) scatters dy back', () => {
    const x = tf.randomUniform([2, 6, 4, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
    const xs = x.arraySync();
    const cols = im2colStride2(x);
    expect(cols.shape).toEqual([2 * 3 * 2, 27]);
    const expected: number[] = [];
    for (let s = 0; s < 2; s++)
      for (let o = 0; o < 3; o++)
        for (let q = 0; q < 2; q++)
          for (let di = 0; di < 3; di++)
            for (let dj = 0; dj < 3; dj++)
              for (let c = 0; c < 3; c++) {
                const r = 2 * o + di - 1;
                const col = 2 * q + dj - 1;
                expected.push(r < 0 || r >= 6 || col < 0 || col >= 4 ? 0 : (xs[s]?.[r]?.[col]?.[c] ?? NaN));
              }
    expect(maxAbsDiff(cols.dataSync(), expected)).toBe(0);
    // d/dx of sum(cols * w) = sum of w over every column a pixel lands in.
    const w = tf.randomNormal([12, 27], 0, 1, 'float32', 3) as tf.Tensor2D;
    const ws = w.dataSync();
    const grad = tf.grad((input) => tf.sum(tf.mul(im2colStride2(input as tf.Tensor4D), w)))(x);
    const want = new Float64Array(2 * 6 * 4 * 3);
    let row = 0;
    for (let s = 0; s < 2; s++)
      for (let o = 0; o < 3; o++)
        for (let q = 0; q < 2; q++, row++)
          for (let di = 0; di < 3; di++)
            for (let dj = 0; dj < 3; dj++)
              for (let c = 0; c < 3; c++) {
                const r = 2 * o + di - 1;
                const col = 2 * q + dj - 1;
                if (r < 0 || r >= 6 || col < 0 || col >= 4) continue;
                want[((s * 6 + r) * 4 + col) * 3 + c] += ws[row * 27 + (di * 3 + dj) * 3 + c] ?? NaN;
              }
    expect(maxAbsDiff(grad.dataSync(), want)).toBeLessThan(1e-5);
    tf.dispose([x, cols, w, grad]);
  });

  it('MAE loss: every parameter, the stem included, gets the finite-difference gradient', () => {
    const { params, refParams, images, mask, visible } = probe;
    const { value, grads } = tf.variableGrads(() => maeForward(params, config, images.tensor, mask).loss);
    expect(Object.keys(grads).length).toBe(params.size);
    const { analytic, numeric } = probeParams(
      STEM_PROBES,
      (name) => grads[params.get(name)?.name ?? '']?.dataSync(),
      refParams,
      (p) => ref.maeLoss(p, config, images.arrays, visible),
    );
    expectClose(analytic, numeric, `${backend} ConvStem MAE params`, { minNorm: 1e-4 });
    tf.dispose([value, grads]);
  });

  it('a perturbation of the encoder input (every patch: the stem sees the whole image) gets its gradient', () => {
    const { params, refParams, images, mask, visible } = probe;
    const input = encoderInput(config, images.tensor, mask);
    expect(input.shape).toEqual([n, L, K]);
    const rng = new Rng(3);
    const deltaValues = Array.from({ length: n * L * K }, () => (rng.uniform() * 2 - 1) * (8 / 255));
    const delta = tf.tensor3d(deltaValues, [n, L, K]);
    const targets = orderedTargets(config, images.tensor, mask);
    const grad = tf.grad((d) => {
      const latent = encodeVisible(params, config, tf.add(input, d), mask, { trainParams: false });
      return reconstructionLoss(decode(params, config, latent, mask, { trainParams: false }), targets, mask.numVisible);
    })(delta);
    const g = grad.dataSync();
    const refDelta = (at: number, s: number) =>
      Array.from({ length: n }, (_, si) =>
        Array.from({ length: L }, (_, t) =>
          Float64Array.from({ length: K }, (_, j) => {
            const i = (si * L + t) * K + j;
            return (deltaValues[i] ?? 0) + (i === at ? s : 0);
          }),
        ),
      );
    // A pixel of a masked patch next to a visible one moves the visible token through the 3x3 kernels.
    const coords = [0, 191, 5 * K + 17, L * K + 3 * K + 100, n * L * K - 1];
    const numeric = coords.map((c) =>
      centralDiff((s) => ref.maeLoss(refParams, config, images.arrays, visible, { delta: refDelta(c, s) })),
    );
    expectClose(
      coords.map((c) => g[c] ?? NaN),
      numeric,
      `${backend} ConvStem input delta`,
      { minNorm: 1e-4 },
    );
    tf.dispose([input, delta, targets, grad]);
  });

  it('classifier: gradients w.r.t. pixels and stem parameters match finite differences', () => {
    const { params, images } = probe;
    const rng = new Rng(8);
    const cls = classifierParamsFromEncoder(params, config, 4, rng, { headInitStd: 0.5 });
    const size = 24 * 24 * 3;
    const probed = probeClassifier(cls, config, images, rng, {
      classes: 4,
      params: [
        ['patch_embed.proj.stem.0.weight', [100]],
        ['patch_embed.proj.stem.4.weight', [6]],
        ['patch_embed.proj.stem.9.weight', [300]],
        ['head.weight', [7]],
      ],
      pixels: [0, 77, 1000, size + 1727],
    });
    const minNorm = 1e-4;
    expectClose(probed.params.analytic, probed.params.numeric, `${backend} ConvStem classifier params`, { minNorm });
    expectClose(probed.pixels.analytic, probed.pixels.numeric, `${backend} ConvStem classifier pixels`, { minNorm });
    disposeParams(cls);
  });

  it.each([true, false])('pre-training with pretrainStem %s trains the stem or leaves it at init', (pretrainStem) => {
    const { params, images, mask } = probe;
    const frozenConfig = ModelConfig.parse({ ...config, encoder: { ...config.encoder, pretrainStem } });
    const run = PretrainConfig.parse({ mode: 'mae', model: frozenConfig });
    const result = pretrainStep({
      params,
      config: frozenConfig,
      run,
      images: images.tensor,
      rng: new Rng(1),
      given: { mask },
    });
    const stemNames = [...params.keys()].filter((name) => name.startsWith('patch_embed.'));
    for (const name of stemNames) expect(result.grads.has(name), name).toBe(pretrainStem);
    expect(result.grads.has('blocks.0.attn.qkv.weight')).toBe(true);
    expect(result.grads.size).toBe(params.size - (pretrainStem ? 0 : stemNames.length));
    result.dispose();
  });
});
