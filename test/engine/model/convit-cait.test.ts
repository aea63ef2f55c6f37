import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convitEncoderImpl } from '../../../src/engine/model/convit';
import { relativePositions } from '../../../src/engine/model/gpsa';
import {
  classifierForward,
  classifierParamSpecs,
  disposeParams,
  initClassifierParams,
  initMaeParams,
  maeForward,
  maeParamSpecs,
  randomMasking,
  visiblePatches,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import type { MiLayer } from '../../../src/shared/mi-config';
import { useBackend } from '../../helpers/backend';
import { flat, maxAbsDiff, microConfig, randomImages, randomizeParams, Rng, toRefParams } from './fixtures';
import type { RefParams } from './reference';
import * as tref from './reference-token-encoders';
import { caitConfig, CASES, config, convitConfig, NUM_CLASSES } from './token-encoder-cases';

const H = 1e-5;

function withShift(params: RefParams, name: string, index: number, shift: number): RefParams {
  const copy = new Map(params);
  const values = Float64Array.from(params.get(name) ?? []);
  values[index] = (values[index] ?? 0) + shift;
  copy.set(name, values);
  return copy;
}

function expectClose(analytic: number[], numeric: number[], label: string): void {
  const norm = Math.sqrt(numeric.reduce((a, v) => a + v * v, 0));
  const err = Math.sqrt(analytic.reduce((a, v, i) => a + (v - (numeric[i] ?? 0)) ** 2, 0));
  console.info(
    `${label}: ${numeric.length} coordinates, |fd| ${norm.toExponential(2)}, relative error ${(err / norm).toExponential(2)}`,
  );
  expect(norm).toBeGreaterThan(1e-3);
  expect(err / norm).toBeLessThan(2e-3);
  analytic.forEach((g, i) =>
    expect(Math.abs(g - (numeric[i] ?? 0))).toBeLessThan(1e-4 + 1e-2 * Math.abs(numeric[i] ?? 0)),
  );
}

describe('GPSA relative positions', () => {
  it('are (dx, dy, d^2) between the given patches on the full grid, whatever subset is visible', () => {
    // Patches 1 (row 0, column 1) and 14 (row 3, column 2) of a 4 x 4 grid.
    const rel = relativePositions([1, 14], 4);
    expect(Array.from(rel)).toEqual([0, 0, 0, 1, 3, 10, -1, -3, 10, 0, 0, 0]);
  });
});

describe.each(['cpu', 'wasm'] as const)('ConViT and CaiT on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  describe.each(CASES)('$name', (c) => {
    const n = 2;
    let classifier: ParamMap;
    let mae: ParamMap;
    let refClassifier: RefParams;
    let refMae: RefParams;
    let images: ReturnType<typeof randomImages>;
    let mask: PatchMask;
    let visible: number[][];
    const weights = Float64Array.from({ length: n * NUM_CLASSES }, (_, i) => Math.sin(i + 1));
    const weightedLogits = (logits: Float64Array[]) =>
      logits.reduce((a, row, s) => a + row.reduce((b, v, k) => b + v * (weights[s * NUM_CLASSES + k] ?? 0), 0), 0);

    beforeAll(() => {
      const rng = new Rng(31);
      classifier = initClassifierParams(c.config, NUM_CLASSES, rng);
      mae = initMaeParams(c.config, rng);
      randomizeParams(classifier, rng);
      randomizeParams(mae, rng);
      refClassifier = toRefParams(classifier);
      refMae = toRefParams(mae);
      images = randomImages(rng, n, config);
      mask = randomMasking(rng, n, 16, 0.75, { order: 'shuffled' });
      visible = mask.visible.map((v) => Array.from(v));
    });

    afterAll(() => {
      disposeParams(classifier);
      disposeParams(mae);
      images.tensor.dispose();
      mask.dispose();
    });

    it('has exactly the parameters its specs name', () => {
      expect([...classifier.keys()]).toEqual(classifierParamSpecs(c.config, NUM_CLASSES).map((s) => s.name));
      expect([...mae.keys()]).toEqual(maeParamSpecs(c.config).map((s) => s.name));
    });

    it('classifier logits match the float64 reference', () => {
      const logits = classifierForward(classifier, c.config, images.tensor).logits;
      const expected = tref.tokenLogits(refClassifier, config, c.ref, images.arrays);
      const diff = maxAbsDiff(logits.dataSync(), flat(expected));
      console.info(`${backend} ${c.name} logits: max |diff| ${diff.toExponential(2)}`);
      expect(logits.shape).toEqual([n, NUM_CLASSES]);
      expect(diff).toBeLessThan(1e-4);
      logits.dispose();
    });

    it('MAE loss on shuffled visible patches matches the float64 reference', () => {
      const loss = maeForward(mae, c.config, images.tensor, mask).loss;
      const expected = tref.tokenMaeLoss(refMae, config, c.ref, images.arrays, visible);
      console.info(`${backend} ${c.name} MAE loss ${loss.dataSync()[0]} vs ${expected}`);
      expect(Math.abs((loss.dataSync()[0] ?? NaN) - expected)).toBeLessThan(1e-4 * Math.max(1, Math.abs(expected)));
      loss.dispose();
    });

    it('MAE parameter gradients match finite differences; each parameter gets one', () => {
      const { value, grads } = tf.variableGrads(() => maeForward(mae, c.config, images.tensor, mask).loss);
      const byName = new Map<string, Float32Array>();
      for (const [name, v] of mae) {
        const g = grads[v.name];
        expect(g, name).toBeDefined();
        if (!g) continue;
        const data = g.dataSync() as Float32Array;
        expect(data.every(Number.isFinite), name).toBe(true);
        const largest = Math.max(...Array.from(data, Math.abs));
        if (c.zeroGradient.test(name)) expect(largest, name).toBeLessThan(1e-6);
        else expect(largest, `${name} has a zero gradient`).toBeGreaterThan(0);
        byName.set(name, data);
      }
      const analytic: number[] = [];
      const numeric: number[] = [];
      for (const [name, indices] of c.probes) {
        for (const index of indices) {
          analytic.push(byName.get(name)?.[index] ?? NaN);
          const f = (s: number) =>
            tref.tokenMaeLoss(withShift(refMae, name, index, s), config, c.ref, images.arrays, visible);
          numeric.push((f(H) - f(-H)) / (2 * H));
        }
      }
      expectClose(analytic, numeric, `${backend} ${c.name} MAE params`);
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
    });

    it('classifier gradients w.r.t. parameters and pixels match finite differences', () => {
      const w = tf.tensor2d(Float32Array.from(weights), [n, NUM_CLASSES]);
      const objective = () =>
        tf.sum(tf.mul(classifierForward(classifier, c.config, images.tensor).logits, w)) as tf.Scalar;
      const { value, grads } = tf.variableGrads(objective);
      const analytic: number[] = [];
      const numeric: number[] = [];
      const probes: [string, number[]][] = [
        ...c.probes.filter(([name]) => classifier.has(name)),
        ['head.weight', [3, 70]],
        ['head.bias', [2]],
      ];
      for (const [name, indices] of probes) {
        const g = grads[classifier.get(name)?.name ?? '']?.dataSync();
        for (const index of indices) {
          analytic.push(g?.[index] ?? NaN);
          const f = (s: number) =>
            weightedLogits(tref.tokenLogits(withShift(refClassifier, name, index, s), config, c.ref, images.arrays));
          numeric.push((f(H) - f(-H)) / (2 * H));
        }
      }
      expectClose(analytic, numeric, `${backend} ${c.name} classifier params`);
      const pixelGrad = tf
        .grad((x: tf.Tensor) => tf.sum(tf.mul(classifierForward(classifier, c.config, x as tf.Tensor4D).logits, w)))(
          images.tensor,
        )
        .dataSync();
      const pixels = [0, 100, 385, 767, 800, 1500];
      const pixelNumeric = pixels.map((i) => {
        const f = (s: number) => {
          const size = config.imageSize * config.imageSize * config.channels;
          const shifted = images.arrays.map((a, sample) => a.map((x, k) => (sample * size + k === i ? x + s : x)));
          return weightedLogits(tref.tokenLogits(refClassifier, config, c.ref, shifted));
        };
        return (f(H) - f(-H)) / (2 * H);
      });
      expectClose(
        pixels.map((i) => pixelGrad[i] ?? NaN),
        pixelNumeric,
        `${backend} ${c.name} pixels`,
      );
      value.dispose();
      w.dispose();
      Object.values(grads).forEach((g) => g.dispose());
    });
  });
});

describe('initialisation', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it("ConViT: timm's GPSA local_init (v the identity, positional heads on a 2 x 2 kernel), pos_embed the sin-cos table", () => {
    const strong = microConfig({
      heads: 4,
      encoder: { kind: 'convit', localUpToLayer: 1, localityStrength: 2, qkvBias: false },
    });
    const params = initMaeParams(strong, new Rng(1));
    const d = config.width;
    const v = params.get('blocks.0.attn.v.weight')?.arraySync() as number[][];
    v.forEach((row, i) => row.forEach((x, j) => expect(x).toBe(i === j ? 1 : 0)));
    // timm: head h1 + 2 * h2 gets weight[head] = (2 (h2 - 0.5), 2 (h1 - 0.5), -1), times the locality strength.
    const pos = params.get('blocks.0.attn.pos_proj.weight')?.arraySync() as number[][]; // [3, heads]
    for (const [h1, h2] of [
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ] as const) {
      const head = h1 + 2 * h2;
      expect([pos[0]?.[head], pos[1]?.[head], pos[2]?.[head]]).toEqual([2 * 2 * (h2 - 0.5), 2 * 2 * (h1 - 0.5), -2]);
    }
    const table = params.get('pos_embed')?.dataSync() ?? new Float32Array();
    // Patch 5 is row 1, column 1: its first quarter is sin(1 * omega_k), omega_0 = 1.
    expect(table[5 * d]).toBeCloseTo(Math.sin(1), 6);
    expect(params.get('blocks.0.attn.gating_param')?.dataSync()).toEqual(new Float32Array(4).fill(1));
    disposeParams(params);
  });

  it('CaiT: every LayerScale gamma starts at layerScaleInit, pos_embed at the sin-cos table', () => {
    const params = initClassifierParams(caitConfig, NUM_CLASSES, new Rng(1));
    const gammas = [...params].filter(([name]) => /gamma_[12]$/.test(name));
    expect(gammas).toHaveLength(2 * (caitConfig.depth + 2));
    for (const [, g] of gammas)
      expect(Array.from(g.dataSync())).toEqual(new Array(config.width).fill(Math.fround(1e-5)));
    disposeParams(params);
  });
});

describe('MI features of the token encoders (mi.layer)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it("ConViT: the default layer is the latent; block 1 (GPSA, before the cls token joins) has the patch tokens only; block 'depth' normed equals the latent", () => {
    const rng = new Rng(3);
    const params = initMaeParams(convitConfig, rng);
    randomizeParams(params, rng);
    const images = randomImages(rng, 2, config);
    const mask = randomMasking(rng, 2, 16, 0.75);
    const patches = visiblePatches(config, images.tensor, mask);
    const encode = (ids: Parameters<typeof convitEncoderImpl.encodeVisible>[3], layer: MiLayer) =>
      convitEncoderImpl.encodeVisible(params, convitConfig, patches, ids, layer, {});
    const last = encode(mask, { block: 'last', finalNorm: true });
    expect(last.features).toBe(last.latent);
    expect(last.latent.shape).toEqual([2, 5, config.width]);
    const first = encode(mask, { block: 1, finalNorm: false });
    expect(first.features.shape).toEqual([2, 4, config.width]);
    const deepest = encode(mask.visibleIds, {
      block: config.depth,
      finalNorm: true,
    });
    expect(maxAbsDiff(deepest.features.dataSync(), last.latent.dataSync())).toBeLessThan(1e-6);
    expect(() => encode(mask, { block: 3, finalNorm: true })).toThrow(/past the encoder's 2 blocks/);
    for (const t of [last.latent, first.latent, first.features, deepest.latent, deepest.features, patches]) t.dispose();
    mask.dispose();
    images.tensor.dispose();
    disposeParams(params);
  });
});
