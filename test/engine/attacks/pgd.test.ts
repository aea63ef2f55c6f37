import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fgsm, pgd, pgdFeature } from '../../../src/engine/attacks/pgd';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import {
  linearModel,
  logitsOf,
  marginOf,
  mlp,
  perturbationStats,
  predictedLabels,
  randomImages,
  randomMatrix,
  type LinearModel,
} from './models';

const H = 4;
const W = 4;
const C = 3;
const D = H * W * C;

/** Binary linear model: the worst-case margin is margin(x) - eps * ||w_y - w_o||_dual. */
function binaryCase(seed: number) {
  const rng = new Rng(seed);
  const m = linearModel(randomMatrix(rng, D, 2, 0.5), [0.3, -0.2]);
  const { x, values } = randomImages(rng, 6, H, W, C, 0.25, 0.75);
  const labels = values.map((v) => {
    const z = logitsOf(m, v);
    return (z[0] ?? 0) >= (z[1] ?? 0) ? 0 : 1;
  });
  return { m, x, values, labels };
}

/**
 * Multi-class linear model whose runner-up class is the same everywhere in the ball and all other
 * classes are 30 logits lower: the optimum moves against w_y - w_j for that runner-up j.
 */
function multiClassCase(seed: number) {
  const rng = new Rng(seed);
  const classes = 5;
  const m = linearModel(randomMatrix(rng, D, classes, 0.5), [0, 0, -30, -30, -30]);
  const { x, values } = randomImages(rng, 6, H, W, C, 0.25, 0.75);
  const labels = values.map((v) => {
    const z = logitsOf(m, v);
    return (z[0] ?? 0) >= (z[1] ?? 0) ? 0 : 1;
  });
  return { m, x, values, labels };
}

function optimum(m: LinearModel, image: number[], label: number, eps: number, threat: 'linf' | 'l2'): number {
  const other = label === 0 ? 1 : 0;
  const v = m.w.map((row) => (row[label] ?? 0) - (row[other] ?? 0));
  const dual = threat === 'linf' ? v.reduce((a, b) => a + Math.abs(b), 0) : Math.sqrt(v.reduce((a, b) => a + b * b, 0));
  return marginOf(logitsOf(m, image), label) - eps * dual;
}

describe.each(['cpu', 'wasm'] as const)('PGD and FGSM on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  for (const [name, make] of [
    ['binary', binaryCase],
    ['multi-class', multiClassCase],
  ] as const) {
    for (const threat of ['linf', 'l2'] as const) {
      for (const loss of ['ce', 'margin'] as const) {
        it(`reaches the analytic ${threat} optimum of a ${name} linear model (${loss} loss)`, async () => {
          const { m, x, values, labels } = make(11);
          const eps = threat === 'linf' ? 0.05 : 0.3;
          const before = tf.memory().numTensors;
          const result = await pgd(m.model, x, labels, {
            threat,
            eps,
            steps: 60,
            alpha: eps / 4,
            seed: 3,
            loss,
            keep: 'last',
          });
          expect(tf.memory().numTensors).toBe(before + 1);
          const stats = perturbationStats(x, result.xAdv);
          const adv = result.xAdv.arraySync().map((img) => img.flat(2));
          values.forEach((v, i) => {
            const label = labels[i] ?? 0;
            const expected = optimum(m, v, label, eps, threat);
            expect(marginOf(logitsOf(m, adv[i] ?? []), label)).toBeCloseTo(expected, 4);
            expect(result.margin[i]).toBeCloseTo(expected, 4);
            expect(threat === 'linf' ? stats.linf[i] : stats.l2[i]).toBeLessThanOrEqual(eps + 1e-6);
          });
          result.xAdv.dispose();
          x.dispose();
          m.dispose();
        });
      }
    }
  }

  it('FGSM on a linear model lands on the l_inf optimum in one step', async () => {
    const { m, x, values, labels } = binaryCase(5);
    const eps = 0.05;
    const result = await fgsm(m.model, x, labels, { threat: 'linf', eps });
    values.forEach((v, i) => expect(result.margin[i]).toBeCloseTo(optimum(m, v, labels[i] ?? 0, eps, 'linf'), 4));
    expect(result.gradientCalls).toBe(1);
    result.xAdv.dispose();
    x.dispose();
    m.dispose();
  });

  describe('on an MLP', () => {
    let net: ReturnType<typeof mlp>;
    let x: tf.Tensor4D;
    let labels: number[];
    beforeAll(() => {
      net = mlp(7, D, 16, 10);
      x = randomImages(new Rng(9), 16, H, W, C).x;
      labels = predictedLabels(net.model, x);
    });
    afterAll(() => {
      x.dispose();
      net.dispose();
    });

    it('keeps every example in the threat model and the image box, for every variant', async () => {
      for (const threat of ['linf', 'l2'] as const) {
        const eps = threat === 'linf' ? 0.1 : 0.5;
        for (const keep of ['best', 'last'] as const) {
          const before = tf.memory().numTensors;
          const r = await pgd(net.model, x, labels, { threat, eps, steps: 10, seed: 1, keep, restarts: 2 });
          expect(tf.memory().numTensors).toBe(before + 1);
          const s = perturbationStats(x, r.xAdv);
          expect(Math.max(...(threat === 'linf' ? s.linf : s.l2))).toBeLessThanOrEqual(eps + 1e-5);
          expect(s.min).toBeGreaterThanOrEqual(0);
          expect(s.max).toBeLessThanOrEqual(1);
          expect(r.success.filter(Boolean).length).toBeGreaterThan(0);
          r.robust.forEach((robust, i) => expect(robust).toBe((r.margin[i] ?? 0) > 0));
          r.xAdv.dispose();
        }
      }
    });

    it('repeats exactly for a seed, and an example does not depend on its batch', async () => {
      const a = await pgd(net.model, x, labels, { threat: 'linf', eps: 0.05, steps: 5, seed: 4 });
      const b = await pgd(net.model, x, labels, { threat: 'linf', eps: 0.05, steps: 5, seed: 4 });
      expect(Array.from(a.xAdv.dataSync())).toEqual(Array.from(b.xAdv.dataSync()));
      const rows = [3, 7, 11];
      const sub = tf.gather(x, rows);
      const c = await pgd(
        net.model,
        sub,
        rows.map((r) => labels[r] ?? 0),
        { threat: 'linf', eps: 0.05, steps: 5, seed: 4, ids: rows },
      );
      const fromFull = tf.gather(a.xAdv, rows);
      const diff = tf.max(tf.abs(tf.sub(fromFull, c.xAdv))).dataSync()[0];
      expect(diff).toBeLessThan(1e-6);
      tf.dispose([a.xAdv, b.xAdv, c.xAdv, sub, fromFull]);
    });

    it('PGD-fea moves the features away from the clean ones', async () => {
      const feats = (xi: tf.Tensor4D) => tf.reshape(xi, [xi.shape[0], -1]);
      const inner = randomImages(new Rng(3), 8, H, W, C, 0.25, 0.75).x;
      const r = await pgdFeature(net.model, feats, inner, predictedLabels(net.model, inner), {
        threat: 'l2',
        eps: 0.5,
        steps: 5,
        seed: 2,
        keep: 'last',
      });
      inner.dispose();
      // For the identity feature map the objective is ||delta||^2, maximal on the sphere of radius eps.
      r.loss.forEach((l) => expect(l).toBeCloseTo(0.25, 3));
      r.xAdv.dispose();
    });
  });
});
