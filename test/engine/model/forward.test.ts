import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classifierForward,
  decode,
  disposeParams,
  encodeVisible,
  initClassifierParams,
  initMaeParams,
  maeForward,
  maskFromIds,
  orderedTargets,
  patchify,
  randomMasking,
  reconstructionLoss,
  toSpatialOrder,
  unpatchify,
  visiblePatches,
  type AttentionStrategy,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import { useBackend } from '../../helpers/backend';
import { flat, maxAbsDiff, microConfig, randomImages, randomizeParams, Rng, toRefParams } from './fixtures';
import * as ref from './reference';

const TOL = 1e-4;

/** The engine's own kernels exist only on wasm. */
function strategiesOn(backend: 'cpu' | 'wasm'): AttentionStrategy[] {
  return backend === 'wasm' ? ['kernels', 'sliced', 'batched'] : ['sliced', 'batched'];
}

describe.each(['cpu', 'wasm'] as const)('model forward on %s', (backend) => {
  const config = microConfig();
  const n = 3;
  let params: ParamMap;
  let refParams: ref.RefParams;
  let images: ReturnType<typeof randomImages>;
  let mask: PatchMask;

  beforeAll(async () => {
    await useBackend(backend);
    const rng = new Rng(11);
    params = initMaeParams(config, rng);
    randomizeParams(params, rng);
    refParams = toRefParams(params);
    images = randomImages(rng, n, config);
    mask = randomMasking(rng, n, 16, 0.75);
  });

  afterAll(() => {
    disposeParams(params);
    images.tensor.dispose();
    mask.dispose();
  });

  it('patchify follows MAE and unpatchify inverts it exactly', () => {
    const patches = patchify(images.tensor, config.patchSize);
    expect(patches.shape).toEqual([n, 16, 48]);
    const expected = images.arrays.flatMap((a) => flat(ref.patchify(a, config)));
    expect(maxAbsDiff(patches.dataSync(), expected)).toBe(0);
    const back = unpatchify(patches, config.patchSize, config.channels);
    expect(maxAbsDiff(back.dataSync(), images.tensor.dataSync())).toBe(0);
    tf.dispose([patches, back]);
  });

  it.each(strategiesOn(backend))(
    'encoder, decoder and loss match the float64 reference (%s attention)',
    (attention) => {
      const vis = visiblePatches(config, images.tensor, mask);
      const latent = encodeVisible(params, config, vis, mask.visibleIds, { attention });
      const pred = decode(params, config, latent, mask, { attention });
      const spatial = toSpatialOrder(pred, mask);
      const targets = orderedTargets(config, images.tensor, mask);
      const loss = reconstructionLoss(pred, targets, mask.numVisible);
      const lossRaw = reconstructionLoss(pred, targets, mask.numVisible, { normPixLoss: false });

      const refLatent: number[] = [];
      const refPred: number[] = [];
      images.arrays.forEach((image, s) => {
        const ids = Array.from(mask.visible[s] ?? []);
        const patches = ref.patchify(image, config);
        const z = ref.encoder(
          refParams,
          config,
          ids.map((id) => patches[id] as Float64Array),
          ids,
        );
        refLatent.push(...flat(z));
        refPred.push(...flat(ref.decoder(refParams, config, z, ids)));
      });
      const visible = mask.visible.map((v) => Array.from(v));
      const refLoss = ref.maeLoss(refParams, config, images.arrays, visible);
      const refLossRaw = ref.maeLoss(refParams, config, images.arrays, visible, { normPix: false });

      expect(latent.shape).toEqual([n, 1 + mask.numVisible, config.width]);
      expect(maxAbsDiff(latent.dataSync(), refLatent)).toBeLessThan(TOL);
      expect(pred.shape).toEqual([n, 16, 48]);
      expect(maxAbsDiff(spatial.dataSync(), refPred)).toBeLessThan(TOL);
      expect(Math.abs(loss.dataSync()[0] - refLoss)).toBeLessThan(TOL);
      expect(Math.abs(lossRaw.dataSync()[0] - refLossRaw)).toBeLessThan(TOL);
      // Not a trivially small check: the loss is of order one.
      expect(refLoss).toBeGreaterThan(0.1);
      tf.dispose([vis, latent, pred, spatial, targets, loss, lossRaw]);
    },
  );

  it('gives the same reconstruction whether the visible tokens are in spatial or shuffled order', () => {
    const shuffled = mask.visible.map((v) => Int32Array.from(v).reverse());
    const other = maskFromIds(shuffled, mask.masked, 16);
    const a = maeForward(params, config, images.tensor, mask);
    const b = maeForward(params, config, images.tensor, other);
    expect(Math.abs(a.loss.dataSync()[0] - b.loss.dataSync()[0])).toBeLessThan(1e-6);
    const sa = toSpatialOrder(a.pred, mask);
    const sb = toSpatialOrder(b.pred, other);
    expect(maxAbsDiff(sa.dataSync(), sb.dataSync())).toBeLessThan(1e-5);
    tf.dispose([a, b, sa, sb]);
    other.dispose();
  });

  it('applies the configured pixel normalisation inside the forward pass, to inputs and targets', () => {
    const normalized = microConfig({ normalize: { mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] } });
    const out = maeForward(params, normalized, images.tensor, mask);
    const plain = maeForward(params, config, images.tensor, mask);
    const refLoss = ref.maeLoss(
      refParams,
      normalized,
      images.arrays,
      mask.visible.map((v) => Array.from(v)),
    );
    expect(Math.abs(out.loss.dataSync()[0] - refLoss)).toBeLessThan(TOL);
    expect(Math.abs(out.loss.dataSync()[0] - plain.loss.dataSync()[0])).toBeGreaterThan(1e-3);
    tf.dispose([out, plain]);
  });

  it.each(strategiesOn(backend))('classifier logits match the float64 reference (%s)', (attention) => {
    const rng = new Rng(5);
    const cls = initClassifierParams(config, 7, rng);
    randomizeParams(cls, rng);
    const { logits, pooled, tokens } = classifierForward(cls, config, images.tensor, { attention });
    const expected = ref.classifierLogits(toRefParams(cls), config, images.arrays);
    expect(logits.shape).toEqual([n, 7]);
    expect(pooled.shape).toEqual([n, config.width]);
    expect(maxAbsDiff(logits.dataSync(), flat(expected))).toBeLessThan(TOL);
    expect(Math.max(...flat(expected).map(Math.abs))).toBeGreaterThan(0.1);
    // forward_features: every token after the last block, cls first, no final norm.
    const l = (config.imageSize / config.patchSize) ** 2;
    const ids = Array.from({ length: l }, (_, i) => i);
    const expectedTokens = images.arrays.flatMap((image) =>
      flat(ref.encoder(toRefParams(cls), config, ref.patchify(image, config), ids, false)),
    );
    expect(tokens.shape).toEqual([n, 1 + l, config.width]);
    expect(maxAbsDiff(tokens.dataSync(), expectedTokens)).toBeLessThan(TOL);
    tf.dispose([logits, pooled, tokens]);
    disposeParams(cls);
  });
});
