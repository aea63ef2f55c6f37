import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifierForward,
  disposeParams,
  dropPathRates,
  initClassifierParams,
  normPixTargets,
  orderedTargets,
  randomMasking,
  reconstructionLoss,
} from '../../../src/engine/model';
import { useBackend } from '../../helpers/backend';
import { flat, maxAbsDiff, microConfig, randomImages, randomizeParams, Rng, toRefParams } from './fixtures';
import * as ref from './reference';

describe('reconstruction loss', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  const config = microConfig();

  it('is zero for a perfect prediction of the per-patch normalised targets', () => {
    const rng = new Rng(1);
    const images = randomImages(rng, 4, config);
    const mask = randomMasking(rng, 4, 16);
    const targets = orderedTargets(config, images.tensor, mask);
    const perfect = normPixTargets(targets);
    expect(reconstructionLoss(perfect, targets, mask.numVisible).dataSync()[0]).toBeLessThan(1e-10);
    // Without norm_pix the raw patches are the perfect prediction, and the normalised ones are not.
    expect(reconstructionLoss(targets, targets, mask.numVisible, { normPixLoss: false }).dataSync()[0]).toBe(0);
    expect(reconstructionLoss(perfect, targets, mask.numVisible, { normPixLoss: false }).dataSync()[0]).toBeGreaterThan(
      0.1,
    );
    tf.dispose([images.tensor, targets, perfect]);
    mask.dispose();
  });

  it('counts masked patches only, normalises with the unbiased variance and eps 1e-6', () => {
    // One sample, L = 4 patches of K = 3 values; the first 2 positions are visible.
    const target = tf.tensor3d([
      [
        [1, 2, 3],
        [0, 0, 0],
        [1, 2, 6],
        [2, 2, 2],
      ],
    ]);
    const pred = tf.tensor3d([
      [
        [9, 9, 9],
        [9, 9, 9],
        [0, 0, 0],
        [1, 1, 1],
      ],
    ]);
    // Masked patch [1, 2, 6]: mean 3, unbiased var (4 + 1 + 9) / 2 = 7; patch [2, 2, 2]: var 0.
    const t1 = [1, 2, 6].map((v) => (v - 3) / Math.sqrt(7 + 1e-6));
    const expected = (t1.reduce((a, v) => a + v * v, 0) / 3 + 1) / 2;
    expect(reconstructionLoss(pred, target, 2).dataSync()[0]).toBeCloseTo(expected, 6);
    const changedVisible = tf.tensor3d([
      [
        [-5, 0, 5],
        [100, 1, 2],
        [0, 0, 0],
        [1, 1, 1],
      ],
    ]);
    expect(reconstructionLoss(changedVisible, target, 2).dataSync()[0]).toBeCloseTo(expected, 6);
    const changedMasked = tf.tensor3d([
      [
        [9, 9, 9],
        [9, 9, 9],
        [0, 0, 0.5],
        [1, 1, 1],
      ],
    ]);
    expect(reconstructionLoss(changedMasked, target, 2).dataSync()[0]).not.toBeCloseTo(expected, 3);
    const raw = ((1 + 4 + 36) / 3 + 1) / 2;
    expect(reconstructionLoss(pred, target, 2, { normPixLoss: false }).dataSync()[0]).toBeCloseTo(raw, 5);
    tf.dispose([target, pred, changedVisible, changedMasked]);
  });
});

describe('drop path', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('uses timm rates linspace(0, rate, depth)', () => {
    expect(dropPathRates(0.1, 3)).toEqual([0, 0.05, 0.1]);
    expect(dropPathRates(0.1, 1)).toEqual([0]);
  });

  it('drops or rescales each residual branch per sample, drawn from the Rng in block then branch order', () => {
    const config = microConfig({ depth: 3 });
    const rng = new Rng(9);
    const params = initClassifierParams(config, 4, rng);
    randomizeParams(params, rng);
    const n = 6;
    const images = randomImages(rng, n, config);
    const rate = 0.6;
    const seed = 77;

    const out = classifierForward(params, config, images.tensor, { dropPath: { rate, rng: new Rng(seed) } });
    const again = classifierForward(params, config, images.tensor, { dropPath: { rate, rng: new Rng(seed) } });
    expect(maxAbsDiff(out.logits.dataSync(), again.logits.dataSync())).toBe(0);

    // Replay the documented draws: for each block with rate p > 0, attention branch then MLP branch,
    // one uniform per sample, kept (scaled 1 / (1 - p)) when below 1 - p.
    const draws = new Rng(seed);
    const scales: [number, number][][] = Array.from({ length: n }, () => []);
    dropPathRates(rate, config.depth).forEach((p, block) => {
      const branch = () => Array.from({ length: n }, () => (p > 0 ? (draws.uniform() < 1 - p ? 1 / (1 - p) : 0) : 1));
      const attn = branch();
      const mlp = branch();
      for (let s = 0; s < n; s++) (scales[s] as [number, number][])[block] = [attn[s] ?? 1, mlp[s] ?? 1];
    });
    const dropped = scales
      .flat()
      .flat()
      .filter((v) => v === 0).length;
    expect(dropped).toBeGreaterThan(0); // the check covers dropped and kept branches
    expect(
      scales
        .flat()
        .flat()
        .filter((v) => v > 1).length,
    ).toBeGreaterThan(0);
    const expected = ref.classifierLogits(toRefParams(params), config, images.arrays, scales);
    expect(maxAbsDiff(out.logits.dataSync(), flat(expected))).toBeLessThan(1e-4);

    const plain = classifierForward(params, config, images.tensor);
    expect(maxAbsDiff(plain.logits.dataSync(), out.logits.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([out, again, plain, images.tensor]);
    disposeParams(params);
  });
});
