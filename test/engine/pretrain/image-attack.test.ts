import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeParams, initMaeParams, randomMasking, type ParamMap, type PatchMask } from '../../../src/engine/model';
import { attackReconstruction, imageAttackLoss } from '../../../src/engine/pretrain/step';
import { PretrainAttack } from '../../../src/shared/pretrain-config';
import { useBackend } from '../../helpers/backend';
import { microConfig, randomImages, randomizeParams, Rng, toRefParams } from '../model/fixtures';
import * as ref from '../model/reference';

/**
 * perturb 'image' as the authors' code runs it (spec section 3): the model is called on adv_images and
 * its loss patchifies those same images (norm_pix included) as the target, the gradient flowing through
 * the target. The port below is that attack in float64 on the reference MAE (test/engine/model/reference.ts),
 * its gradient by central differences of the whole loss.
 */

const EPS = 8 / 255;
const ALPHA = 10 / 255;
const N = 2;

describe("pre-training attack, perturb 'image' (the authors' code)", () => {
  const config = microConfig();
  const size = config.imageSize * config.imageSize * config.channels;
  let params: ParamMap;
  let refParams: ref.RefParams;
  let images: ReturnType<typeof randomImages>;
  let mask: PatchMask;
  let visible: number[][];
  let start: Float64Array[];

  beforeAll(async () => {
    await useBackend('wasm');
    const rng = new Rng(21);
    params = initMaeParams(config, rng);
    randomizeParams(params, rng);
    refParams = toRefParams(params);
    images = randomImages(rng, N, config);
    mask = randomMasking(rng, N, 16, 0.75);
    visible = mask.visible.map((v) => Array.from(v));
    start = Array.from({ length: N }, () =>
      Float64Array.from({ length: size }, () => Math.fround((2 * rng.uniform() - 1) * EPS)),
    );
  });

  afterAll(() => {
    disposeParams(params);
    mask.dispose();
    images.tensor.dispose();
  });

  /** Whether pixel i of an NHWC image lies in one of the sample's masked patches. */
  const isMaskedPixel = (s: number, i: number): boolean => {
    const side = config.imageSize;
    const p = config.patchSize;
    const row = Math.floor(i / (side * config.channels));
    const col = Math.floor(i / config.channels) % side;
    const patch = Math.floor(row / p) * (side / p) + Math.floor(col / p);
    return !(visible[s] ?? []).includes(patch);
  };

  /** The port: x0 = clip(x + delta0), the authors' loss on x0 (target x0 itself), its float64 gradient. */
  let port: { adv0: Float64Array[]; grad: Float64Array[] } | undefined;
  function portGradient(): { adv0: Float64Array[]; grad: Float64Array[] } {
    if (port) return port;
    const adv0 = images.arrays.map((x, s) => x.map((v, i) => Math.min(1, Math.max(0, v + (start[s]?.[i] ?? 0)))));
    const h = 1e-5;
    const grad = adv0.map((a, s) => {
      const g = new Float64Array(size);
      const loss = (image: Float64Array) => ref.maeLoss(refParams, config, [image], [visible[s] ?? []]) / N;
      for (let i = 0; i < size; i++) {
        const up = Float64Array.from(a);
        const down = Float64Array.from(a);
        up[i] = (a[i] ?? 0) + h;
        down[i] = (a[i] ?? 0) - h;
        g[i] = (loss(up) - loss(down)) / (2 * h);
      }
      return g;
    });
    port = { adv0, grad };
    return port;
  }

  it('gives masked pixels the gradient of the target (not zero), as the float64 port', () => {
    const { adv0, grad } = portGradient();
    const adv0Tensor = tf.tensor4d(Float32Array.from(adv0.flatMap((a) => Array.from(a))), images.tensor.shape);
    const g = tf.grad((x: tf.Tensor) => imageAttackLoss(params, config, x as tf.Tensor4D, mask, true))(adv0Tensor);
    const engine = g.dataSync();
    const maskedEngine: number[] = [];
    const maskedRef: number[] = [];
    for (let s = 0; s < N; s++) {
      for (let i = 0; i < size; i++) {
        if (!isMaskedPixel(s, i)) continue;
        maskedEngine.push(engine[s * size + i] ?? NaN);
        maskedRef.push(grad[s]?.[i] ?? NaN);
      }
    }
    expect(maskedRef.length).toBe(N * 12 * 16 * 3);
    const norm = Math.hypot(...maskedRef);
    const err = Math.hypot(...maskedRef.map((v, k) => v - (maskedEngine[k] ?? NaN)));
    expect(norm).toBeGreaterThan(1e-3);
    expect(err / norm).toBeLessThan(2e-3);
    expect(maskedEngine.filter((v) => v === 0).length).toBe(0);
    tf.dispose([adv0Tensor, g]);
  });

  it('steps 1, fixed mask: every pixel moves by alpha, the share at |delta| = eps as the port', () => {
    const { adv0, grad } = portGradient();
    const portDelta = images.arrays.map((x, s) =>
      x.map((v, i) => {
        const step = (adv0[s]?.[i] ?? 0) - v + ALPHA * Math.sign(grad[s]?.[i] ?? 0);
        return Math.min(1, Math.max(0, v + Math.min(EPS, Math.max(-EPS, step)))) - v;
      }),
    );
    const startTensor = tf.tensor4d(Float32Array.from(start.flatMap((a) => Array.from(a))), images.tensor.shape);
    const attack = PretrainAttack.parse({ steps: 1, perturb: 'image', attackMask: 'shared' });
    const result = attackReconstruction(params, config, images.tensor, mask, attack, {
      maskRatio: 0.75,
      normPixLoss: true,
      rng: new Rng(5),
      start: startTensor,
    });
    const delta = result.delta.dataSync();
    const atEps = (d: ArrayLike<number>, masked: boolean) => {
      let hits = 0;
      let count = 0;
      for (let s = 0; s < N; s++) {
        for (let i = 0; i < size; i++) {
          if (isMaskedPixel(s, i) !== masked) continue;
          count++;
          if (Math.abs(Math.abs(d[s * size + i] ?? 0) - EPS) < 1e-6) hits++;
        }
      }
      return hits / count;
    };
    const portFlat = portDelta.flatMap((a) => Array.from(a));
    for (const masked of [true, false]) {
      const share = atEps(delta, masked);
      console.info(
        `masked ${masked}: share at |delta| = eps ${share.toFixed(4)}, port ${atEps(portFlat, masked).toFixed(4)}`,
      );
      // A clean, detached target left masked pixels at their uniform start (share 0).
      expect(share).toBeGreaterThan(0.3);
      expect(Math.abs(share - atEps(portFlat, masked))).toBeLessThan(0.01);
    }
    let agree = 0;
    portFlat.forEach((v, i) => (Math.abs(v - (delta[i] ?? NaN)) < 1e-6 ? agree++ : 0));
    expect(agree / portFlat.length).toBeGreaterThan(0.99);
    tf.dispose([startTensor, result.adversarial, result.delta, result.loss]);
  });
});
