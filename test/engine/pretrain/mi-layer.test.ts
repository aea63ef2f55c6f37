import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import {
  disposeParams,
  encodeVisibleWithLayer,
  initMaeParams,
  patchify,
  randomMasking,
  visiblePatches,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import { pretrainStep } from '../../../src/engine/pretrain/step';
import { DEFAULT_MI_LAYER, type MiLayer } from '../../../src/shared/mi-config';
import { PretrainConfig } from '../../../src/shared/pretrain-config';
import { useBackend } from '../../helpers/backend';
import { flat, maxAbsDiff, microConfig, randomImages, randomizeParams, Rng, toRefParams } from '../model/fixtures';
import * as ref from '../model/reference';

/**
 * mi.layer (paper Table XXI): MI takes z at the output of encoder block k, with or without the final
 * norm. Checked against the float64 reference encoder run through blocks 1..k only.
 */

const TOL = 1e-4;
const N = 6;
const config = microConfig(); // depth 2

describe('MI at the output of block k (mi.layer)', () => {
  let params: ParamMap;
  let mask: PatchMask;
  let images: ReturnType<typeof randomImages>;

  beforeAll(async () => {
    await useBackend('cpu');
    const rng = new Rng(21);
    params = initMaeParams(config, rng);
    randomizeParams(params, rng);
    images = randomImages(rng, N, config);
    mask = randomMasking(rng, N, 16, 0.75);
  });

  afterAll(() => {
    mask.dispose();
    images.tensor.dispose();
    disposeParams(params);
  });

  /** The reference's tokens after blocks 1..block (all of them for 'last'), normed or not: [N * (1 + Lv) * D]. */
  function referenceFeatures(layer: MiLayer): number[] {
    const depth = layer.block === 'last' ? config.depth : layer.block;
    const refParams = toRefParams(params);
    return images.arrays.flatMap((image, s) => {
      const ids = Array.from(mask.visible[s] ?? []);
      const patches = ref.patchify(image, config);
      const z = ref.encoder(
        refParams,
        { ...config, depth },
        ids.map((id) => patches[id] as Float64Array),
        ids,
        layer.finalNorm,
      );
      return flat(z);
    });
  }

  const LAYERS: MiLayer[] = [
    { block: 1, finalNorm: false },
    { block: 1, finalNorm: true },
    { block: 2, finalNorm: false },
    { block: 'last', finalNorm: false },
    { block: 'last', finalNorm: true },
  ];

  it.each(LAYERS)(
    'features at block $block (finalNorm $finalNorm) equal the reference through those blocks',
    (layer) => {
      const vis = visiblePatches(config, images.tensor, mask);
      const { latent, features } = encodeVisibleWithLayer(params, config, vis, mask, layer);
      expect(features.shape).toEqual([N, 1 + mask.numVisible, config.width]);
      const expected = referenceFeatures(layer);
      expect(maxAbsDiff(features.dataSync(), expected)).toBeLessThan(TOL);
      // The decoder's input stays the whole encoder's normed output whatever the MI layer.
      expect(maxAbsDiff(latent.dataSync(), referenceFeatures(DEFAULT_MI_LAYER))).toBeLessThan(TOL);
      // Block 1's features are not the last block's: the check above could tell them apart.
      if (layer.block === 1) {
        expect(maxAbsDiff(expected, referenceFeatures({ ...layer, block: 'last' }))).toBeGreaterThan(0.05);
      }
      tf.dispose([vis, latent, features]);
    },
  );

  it("the pre-training step's MI is the estimator on block k's output (and not on the last block's)", async () => {
    const estimate = (features: number[]): number =>
      tf.tidy(
        () =>
          mutualInformation(
            'nhsic',
            patchify(images.tensor, config.patchSize),
            tf.tensor3d(features, [N, 1 + mask.numVisible, config.width]),
            { sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 1e-5 },
          ).dataSync()[0] ?? NaN,
      );
    const stepMi = async (layer: MiLayer): Promise<number> => {
      const run = PretrainConfig.parse({ mode: 'mae', model: 'micro', mi: { estimator: 'nhsic', layer } });
      const result = pretrainStep({ params, config, run, images: images.tensor, rng: new Rng(1), given: { mask } });
      const mi = (await result.mi.data())[0] ?? NaN;
      result.dispose();
      return mi;
    };
    const atBlock1 = await stepMi({ block: 1, finalNorm: false });
    const expected = estimate(referenceFeatures({ block: 1, finalNorm: false }));
    expect(Math.abs(atBlock1 - expected) / Math.abs(expected)).toBeLessThan(TOL);
    const atLast = await stepMi(DEFAULT_MI_LAYER);
    expect(Math.abs(atLast - estimate(referenceFeatures(DEFAULT_MI_LAYER))) / Math.abs(atLast)).toBeLessThan(TOL);
    expect(Math.abs(atBlock1 - atLast) / Math.abs(atLast)).toBeGreaterThan(1e-3);
  });

  it('defaults to the last block after the final norm, and refuses a block the encoder does not have', () => {
    expect(PretrainConfig.parse({ model: 'micro' }).mi.layer).toEqual({ block: 'last', finalNorm: true });
    const past = PretrainConfig.safeParse({ model: 'micro', mi: { layer: { block: 3 } } });
    expect(past.success).toBe(false);
    expect(past.error?.issues[0]?.path).toEqual(['mi', 'layer', 'block']);
    expect(past.error?.issues[0]?.message).toBe("block 3 is past the encoder's 2 blocks: give 1..2 or 'last'");
    const zero = PretrainConfig.safeParse({ model: 'micro', mi: { layer: { block: 0 } } });
    expect(zero.error?.issues[0]?.message).toBe('mi.layer.block counts from 1 (the first block)');
    const vis = visiblePatches(config, images.tensor, mask);
    expect(() => encodeVisibleWithLayer(params, config, vis, mask, { block: 5, finalNorm: true })).toThrow(
      "mi.layer.block 5 is past the encoder's 2 blocks: give 1..2 or 'last'.",
    );
    vis.dispose();
  });
});
