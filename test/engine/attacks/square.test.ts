import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etaPattern, l2WindowStep, square, squareFraction, squareSide } from '../../../src/engine/attacks/square';
import type { Classifier } from '../../../src/engine/attacks/types';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { mlp, perturbationStats, predictedLabels, randomImages } from './models';

/** A classifier whose backward pass throws: any gradient taken through it fails the attack. */
function forwardOnly(model: Classifier): { model: Classifier; calls: () => number } {
  let calls = 0;
  const noGradient = tf.customGrad((...inputs) => {
    const x = inputs[0];
    if (!(x instanceof tf.Tensor)) throw new Error('expected a tensor');
    return {
      value: tf.clone(x),
      gradFunc: () => {
        throw new Error('a gradient was taken through a score-based attack');
      },
    };
  });
  return {
    model: (x) => {
      calls++;
      return model(noGradient(x) as tf.Tensor4D);
    },
    calls: () => calls,
  };
}

describe('Square schedule and patterns', () => {
  it("halves p at AutoAttack's query counts and sizes squares as square.py", () => {
    const p = (it: number) => squareFraction(it, 0.8, 5000, false);
    expect(
      [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001, 6000, 6001, 8000, 8001].map(p),
    ).toEqual([
      0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625, 0.003125,
      0.003125, 0.0015625,
    ]);
    // resc_schedule maps the iteration onto a 10,000-query schedule.
    expect(squareFraction(3, 0.8, 1000, true)).toBe(0.4);
    // 32 x 32 images: sqrt(0.8 * 1024) = 28.6 -> 29; l_2 squares are odd and at least 3.
    expect(squareSide(0.8, 32, 32, 'linf')).toBe(29);
    expect(squareSide(0.05, 32, 32, 'linf')).toBe(7);
    expect(squareSide(0.4, 32, 32, 'l2')).toBe(21);
    expect(squareSide(0.0015625, 32, 32, 'linf')).toBe(1);
    expect(squareSide(0.0015625, 32, 32, 'l2')).toBe(3);
    // Python rounds half to even: sqrt(p * 16) = 2.5 -> 2.
    expect(squareSide(6.25 / 16, 4, 4, 'linf')).toBe(2);
  });

  it('builds the l_2 update pattern of eta_rectangles / eta', () => {
    const top = [0.25, 1.25, 0.25];
    const bottom = [0.25, 0.25, 0.25, 0.25, 1.25, 0.25];
    const nt = Math.hypot(...top);
    const nb = Math.hypot(...bottom);
    const raw = [...top.map((v) => v / nt), ...bottom.map((v) => -v / nb)];
    const n = Math.hypot(...raw);
    Array.from(etaPattern(3)).forEach((v, i) => expect(v).toBeCloseTo((raw[i] ?? 0) / n, 12));
    expect(Math.hypot(...etaPattern(7))).toBeCloseTo(1, 12);
  });
});

/**
 * square.py's l_2 update (attack_single_run, norm 'L2') in float64 for one example, delta as [c][h][w]:
 * window norms and the moved mass per channel, window 2 cleared, then delta rescaled to eps.
 */
function referenceL2Step(
  delta: number[][][],
  eta: number[][],
  signs: number[],
  s: number,
  [vh, vw]: [number, number],
  [vh2, vw2]: [number, number],
  eps: number,
): number[][][] {
  const c = delta.length;
  const inWindow = (i: number, j: number, top: number, left: number) =>
    i >= top && i < top + s && j >= left && j < left + s;
  const sq = (v: number) => v * v;
  const normsImage = Math.sqrt(delta.flat(2).reduce((a, v) => a + sq(v), 0));
  const next = delta.map((plane, ch) => {
    let window1 = 0;
    let windows = 0;
    plane.forEach((row, i) =>
      row.forEach((v, j) => {
        if (inWindow(i, j, vh, vw)) window1 += sq(v);
        if (inWindow(i, j, vh, vw) || inWindow(i, j, vh2, vw2)) windows += sq(v);
      }),
    );
    const fresh = eta.map((row, a) =>
      row.map((e, b) => e * (signs[ch] ?? 0) + (plane[vh + a]?.[vw + b] ?? 0) / (1e-12 + Math.sqrt(window1))),
    );
    const freshNorm = Math.sqrt(fresh.flat().reduce((acc, v) => acc + sq(v), 0));
    const scale = Math.sqrt(Math.max(eps * eps - normsImage * normsImage, 0) / c + windows) / (1e-12 + freshNorm);
    const out = plane.map((row, i) => row.map((v, j) => (inWindow(i, j, vh2, vw2) ? 0 : v)));
    fresh.forEach((row, a) => row.forEach((v, b) => ((out[vh + a] as number[])[vw + b] = v * scale)));
    return out;
  });
  const total = Math.sqrt(next.flat(2).reduce((a, v) => a + sq(v), 0));
  return next.map((plane) => plane.map((row) => row.map((v) => (v / (total + 1e-12)) * eps)));
}

describe('Square l_2 window update (square.py)', () => {
  it("conserves each channel's l_2 energy with unequal per-channel window energy, as the reference", async () => {
    await useBackend('wasm');
    const [h, w, c, s, eps] = [8, 8, 3, 3, 0.5];
    const rng = new Rng(12);
    // Channel 0 carries most of the energy in the windows, channel 2 almost none.
    const channelScale = [1, 0.3, 0.02];
    const raw = Array.from({ length: c }, (_, ch) =>
      Array.from({ length: h }, () => Array.from({ length: w }, () => (channelScale[ch] ?? 0) * rng.normal())),
    );
    const rawNorm = Math.sqrt(raw.flat(2).reduce((a, v) => a + v * v, 0));
    const delta = raw.map((p) => p.map((r) => r.map((v) => (v / rawNorm) * eps))); // on the sphere, as x_best is
    const x = Array.from({ length: h * w * c }, () => 0.4 + 0.2 * rng.uniform());
    const toNhwc = (d: number[][][]) =>
      Array.from({ length: h * w * c }, (_, k) => d[k % c]?.[Math.floor(k / (w * c))]?.[Math.floor(k / c) % w] ?? 0);
    const pattern = etaPattern(s);
    const eta = Array.from({ length: s }, (_, a) => Array.from({ length: s }, (_, b) => pattern[a * s + b] ?? 0));
    const [top, left, top2, left2] = [1, 2, 4, 4];
    const planes = new Float32Array(h * w);
    eta.forEach((row, a) => row.forEach((v, b) => (planes[(top + a) * w + left + b] = v)));
    const signs = [1, -1, 1];

    const xt = tf.tensor4d(x, [1, h, w, c]);
    const best = tf.tensor4d(
      x.map((v, k) => v + (toNhwc(delta)[k] ?? 0)),
      [1, h, w, c],
    );
    const proposal = l2WindowStep(
      xt,
      best,
      { side: s, tops: [top], lefts: [left], tops2: [top2], lefts2: [left2], planes, signs: Float32Array.from(signs) },
      eps,
    );
    const got = Array.from(proposal.dataSync(), (v, k) => v - (x[k] ?? 0));
    const ref = toNhwc(referenceL2Step(delta, eta, signs, s, [top, left], [top2, left2], eps));
    got.forEach((v, k) => expect(Math.abs(v - (ref[k] ?? 0))).toBeLessThan(1e-5));
    const energy = (values: number[], ch: number) => values.reduce((a, v, k) => (k % c === ch ? a + v * v : a), 0);
    const before = toNhwc(delta);
    for (let ch = 0; ch < c; ch++) {
      expect(Math.abs(energy(got, ch) - energy(before, ch))).toBeLessThan(1e-5 * eps * eps);
      expect(Math.abs(energy(ref, ch) - energy(before, ch))).toBeLessThan(1e-12);
    }
    tf.dispose([xt, best, proposal]);
  });
});

describe.each(['cpu', 'wasm'] as const)('Square on %s', (backend) => {
  let net: ReturnType<typeof mlp>;
  let x: tf.Tensor4D;
  let labels: number[];
  beforeAll(async () => {
    await useBackend(backend);
    net = mlp(6, 8 * 8 * 3, 32, 10);
    x = randomImages(new Rng(4), 20, 8, 8, 3).x;
    labels = predictedLabels(net.model, x);
  });
  afterAll(() => {
    x.dispose();
    net.dispose();
  });

  for (const [threat, eps] of [
    ['linf', 0.04],
    ['l2', 0.5],
  ] as const) {
    it(`never takes a gradient and lowers the accuracy of an MLP substantially (${threat}, eps ${eps})`, async () => {
      const wrapped = forwardOnly(net.model);
      const before = tf.memory().numTensors;
      const r = await square(wrapped.model, x, labels, { threat, eps, queries: 300, seed: 1 });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(r.gradientCalls).toBe(0);
      expect(wrapped.calls()).toBe(r.forwardCalls);
      const accuracy = r.robust.filter(Boolean).length / labels.length;
      // The search, not the random start, does the work: compare with the start point alone.
      const start = await square(net.model, x, labels, { threat, eps, queries: 1, seed: 1 });
      const startAccuracy = start.robust.filter(Boolean).length / labels.length;
      start.xAdv.dispose();
      console.log(
        `${backend} square ${threat} eps ${eps}: accuracy 1 -> ${startAccuracy} after 1 query -> ${accuracy} after 300, ${r.forwardCalls} forward passes`,
      );
      expect(accuracy).toBeLessThan(0.5);
      expect(accuracy).toBeLessThan(startAccuracy - 0.3);
      const s = perturbationStats(x, r.xAdv);
      expect(Math.max(...(threat === 'linf' ? s.linf : s.l2))).toBeLessThanOrEqual(eps + 1e-5);
      expect(s.min).toBeGreaterThanOrEqual(0);
      expect(s.max).toBeLessThanOrEqual(1);
      r.robust.forEach((rb, i) => {
        expect(rb).toBe((r.margin[i] ?? 0) > 0);
        expect(r.queries[i]).toBeLessThanOrEqual(301);
        if (rb) expect(r.queries[i]).toBe(301);
      });
      r.xAdv.dispose();
    });
  }

  it('stops querying an example once it is fooled, and repeats for a seed', async () => {
    const a = await square(net.model, x, labels, { threat: 'linf', eps: 0.15, queries: 100, seed: 9 });
    const b = await square(net.model, x, labels, { threat: 'linf', eps: 0.15, queries: 100, seed: 9 });
    expect(Array.from(a.queries)).toEqual(Array.from(b.queries));
    expect(Array.from(a.xAdv.dataSync())).toEqual(Array.from(b.xAdv.dataSync()));
    expect(Math.min(...a.queries)).toBeLessThan(101);
    tf.dispose([a.xAdv, b.xAdv]);
  });
});
