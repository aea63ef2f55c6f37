import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttackRunRecord, epsFrom255, GradientMaskingReport } from '../../../src/shared/attack-config';
import { cwL2 } from '../../../src/engine/attacks/cw';
import {
  blackBoxCheck,
  maskingReport,
  maskingWarnings,
  randomnessCheck,
  unboundedEpsCheck,
  zeroGradientCheck,
} from '../../../src/engine/attacks/masking-checks';
import { attackRunRecord, runAttack } from '../../../src/engine/attacks/run';
import type { Classifier } from '../../../src/engine/attacks/types';
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
} from './models';

const H = 4;
const W = 4;
const C = 3;
const D = H * W * C;

describe.each(['cpu', 'wasm'] as const)('CW-l2 on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('on a binary linear model: never beats the minimal l_2 distance and breaks what c allows', async () => {
    // For z_y - z_o = m - v . delta the CW optimum reaches the boundary only if the minimal distance
    // m / ||v|| is below c ||v|| / 2, where the penalty's slope beats the distance term. Adam's early,
    // nearly sign-like steps can cross the boundary somewhat beyond that, and CW keeps any
    // misclassified iterate, so the test leaves a margin around the threshold.
    const rng = new Rng(40);
    const raw = randomMatrix(rng, D, 2, 1);
    const { x, values } = randomImages(rng, 10, H, W, C, 0.3, 0.7);
    // Scale the weights so that c ||v|| / 2 is the median minimal distance (which scaling leaves alone).
    const c = 1;
    const v0 = raw.map((row) => (row[0] ?? 0) - (row[1] ?? 0));
    const centre = -0.5 * v0.reduce((a, b) => a + b, 0);
    const distances = values
      .map((img) => Math.abs(img.reduce((acc, p, i) => acc + p * (v0[i] ?? 0), centre)) / Math.hypot(...v0))
      .sort((a, b) => a - b);
    const scale = ((distances[4] ?? 0) + (distances[5] ?? 0)) / (c * Math.hypot(...v0));
    const m = linearModel(
      raw.map((row) => row.map((w) => w * scale)),
      [centre * scale, 0],
    );
    const labels = values.map((v) => {
      const z = logitsOf(m, v);
      return (z[0] ?? 0) >= (z[1] ?? 0) ? 0 : 1;
    });
    const eps = 0.05;
    const before = tf.memory().numTensors;
    const r = await cwL2(m.model, x, labels, { c, steps: 300, learningRate: 0.01, eps });
    expect(tf.memory().numTensors).toBe(before + 1);
    const lines: string[] = [];
    values.forEach((v, i) => {
      const label = labels[i] ?? 0;
      const diff = m.w.map((row) => (row[label] ?? 0) - (row[1 - label] ?? 0));
      const vn = Math.hypot(...diff);
      const minimal = marginOf(logitsOf(m, v), label) / vn;
      const threshold = (c * vn) / 2;
      lines.push(`${minimal.toFixed(3)}${r.robust[i] ? '' : ` -> ${(r.norm[i] ?? 0).toFixed(3)}`}`);
      if (minimal < 0.8 * threshold) expect(r.robust[i]).toBe(false);
      if (minimal > 1.5 * threshold) expect(r.robust[i]).toBe(true);
      if (r.robust[i]) {
        expect(r.norm[i]).toBe(0);
      } else {
        expect(r.norm[i]).toBeGreaterThanOrEqual(minimal * (1 - 1e-3));
        expect(r.norm[i]).toBeLessThan(minimal * 1.05);
      }
      expect(r.robustWithinEps[i]).toBe((r.robust[i] ?? false) || (r.norm[i] ?? 0) > eps);
    });
    console.log(
      `${backend} CW c=1, threshold ${(((distances[4] ?? 0) + (distances[5] ?? 0)) / 2).toFixed(3)}: minimal distance -> found norm: ${lines.join(', ')}`,
    );
    expect(r.robust.filter((rb) => !rb).length).toBeGreaterThanOrEqual(4);
    expect(r.robust.filter(Boolean).length).toBeGreaterThanOrEqual(2);
    expect(r.robustWithinEps.filter(Boolean).length).toBeGreaterThan(r.robust.filter(Boolean).length);
    const s = perturbationStats(x, r.xAdv);
    expect(s.min).toBeGreaterThanOrEqual(0);
    expect(s.max).toBeLessThanOrEqual(1);
    tf.dispose([x, r.xAdv]);
    m.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)('gradient-masking checks on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('pass a plain MLP and flag a quantising, a noisy and a gradient-free model', async () => {
    const net = mlp(1, D, 16, 10);
    const { x } = randomImages(new Rng(3), 12, H, W, C);
    const labels = predictedLabels(net.model, x);

    // Quantising the input (floor) zeroes every input gradient: the classic masked model.
    const quantised: Classifier = (xi) => net.model(tf.div(tf.floor(tf.mul(xi, 4)), 4) as tf.Tensor4D);
    const qLabels = predictedLabels(quantised, x);
    let noiseSeed = 1;
    const noisy: Classifier = (xi) =>
      net.model(tf.add(xi, tf.randomNormal(xi.shape, 0, 0.05, 'float32', noiseSeed++)) as tf.Tensor4D);

    const plainZero = await zeroGradientCheck(net.model, x, labels);
    const maskedZero = await zeroGradientCheck(quantised, x, qLabels);
    expect(plainZero.flagged).toBe(false);
    expect(maskedZero).toEqual({ count: 12, total: 12, fraction: 1, flagged: true });

    expect((await randomnessCheck(net.model, x)).flagged).toBe(false);
    const random = await randomnessCheck(noisy, x);
    expect(random.flagged).toBe(true);
    expect(random.maxLogitDifference).toBeGreaterThan(1e-4);

    const plainUnbounded = await unboundedEpsCheck(net.model, x, labels, { threat: 'linf', iterations: 20 });
    expect(plainUnbounded).toMatchObject({ eps: 1, accuracy: 0, flagged: false });
    const maskedUnbounded = await unboundedEpsCheck(quantised, x, qLabels, { threat: 'l2', iterations: 20 });
    expect(maskedUnbounded.flagged).toBe(true);
    // The random start of an unbounded attack is a random image, which fools some examples by chance.
    expect(maskedUnbounded.accuracy).toBeGreaterThan(0.3);

    // Square is not fooled by the zero gradients: it lowers the accuracy the white-box attack left.
    const whiteBox = await runAttack(quantised, x, qLabels, {
      attack: 'apgd-ce',
      threat: 'linf',
      eps: 0.15,
      iterations: 20,
      restarts: 1,
      rho: 0.75,
      seed: 0,
    });
    const blackBox = await runAttack(quantised, x, qLabels, {
      attack: 'square',
      threat: 'linf',
      eps: 0.15,
      queries: 300,
      pInit: 0.8,
      restarts: 1,
      seed: 0,
    });
    const acc = (r: { robust: boolean[] }) => r.robust.filter(Boolean).length / r.robust.length;
    const check = blackBoxCheck({ square: acc(blackBox), whiteBox: [acc(whiteBox)] });
    console.log(`${backend} quantised model: APGD-CE accuracy ${acc(whiteBox)}, Square ${acc(blackBox)}`);
    expect(check?.flagged).toBe(true);

    const report = maskingReport({
      zeroGradient: maskedZero,
      randomness: random,
      blackBox: check,
      unboundedEps: maskedUnbounded,
    });
    expect(report.warnings).toHaveLength(4);
    // Each sentence says which check raised it (the evaluation places them by kind, not by wording).
    const parts = { zeroGradient: maskedZero, randomness: random, blackBox: check, unboundedEps: maskedUnbounded };
    expect(maskingWarnings(parts).map((w) => w.kind)).toEqual([
      'zero-gradient',
      'randomness',
      'black-box',
      'unbounded-eps',
    ]);
    expect(report.warnings).toEqual(maskingWarnings(parts));
    // The report carries the kinds, through the shared schema the stored report.json is read with.
    expect(GradientMaskingReport.parse(JSON.parse(JSON.stringify(report))).warnings.map((w) => w.kind)).toEqual([
      'zero-gradient',
      'randomness',
      'black-box',
      'unbounded-eps',
    ]);
    expect(maskingReport({ zeroGradient: plainZero, unboundedEps: plainUnbounded }).warnings).toEqual([]);
    tf.dispose([x, whiteBox.xAdv, blackBox.xAdv]);
    net.dispose();
  });

  it('runs any attack from its spec and records the protocol with every number', async () => {
    const net = mlp(2, D, 16, 10);
    const { x } = randomImages(new Rng(5), 8, H, W, C);
    const labels = predictedLabels(net.model, x);
    const ids = [40, 41, 42, 43, 44, 45, 46, 47];
    const specs = [
      { attack: 'fgsm', threat: 'linf', eps: epsFrom255(8) },
      { attack: 'pgd', threat: 'linf', eps: epsFrom255(8), steps: 5, alpha: epsFrom255(2) },
      { attack: 'pgd', threat: 'l2', eps: 0.5, steps: 5, alpha: 0.1, loss: 'margin' },
      { attack: 'apgd-dlr', threat: 'linf', eps: epsFrom255(8), iterations: 5 },
      { attack: 'apgd-t', threat: 'l2', eps: 0.5, iterations: 5, targets: 2 },
      { attack: 'fab-t', threat: 'linf', eps: epsFrom255(8), iterations: 5, targets: 2 },
      { attack: 'square', threat: 'l2', eps: 0.5, queries: 20 },
      { attack: 'cw-l2', steps: 5, eps: 0.5 },
      { attack: 'pgd-fea', threat: 'linf', eps: epsFrom255(8), steps: 3, alpha: epsFrom255(2) },
      {
        attack: 'pgd-mi',
        threat: 'linf',
        eps: epsFrom255(8),
        steps: 3,
        alpha: epsFrom255(2),
        lambda: 1e-5,
        estimator: 'hsic',
      },
    ] as const;
    for (const spec of specs) {
      const before = tf.memory().numTensors;
      const result = await runAttack(net.model, x, labels, spec, {
        ids,
        features: (xi) => tf.reshape(xi, [xi.shape[0], -1]),
        mi: (xAdv) => tf.mean(tf.square(xAdv)) as tf.Scalar,
      });
      expect(tf.memory().numTensors).toBe(before + 1);
      // Every attack stays in its threat model (CW-l2 is unbounded) and in the image box.
      const stats = perturbationStats(x, result.xAdv);
      if ('threat' in spec) {
        expect(Math.max(...(spec.threat === 'linf' ? stats.linf : stats.l2))).toBeLessThanOrEqual(spec.eps + 1e-5);
      }
      expect(stats.min).toBeGreaterThanOrEqual(0);
      expect(stats.max).toBeLessThanOrEqual(1);
      Array.from(result.norm).forEach((v, i) =>
        expect(v).toBeCloseTo(('threat' in spec && spec.threat === 'linf' ? stats.linf : stats.l2)[i] ?? 0, 5),
      );
      const record = attackRunRecord(spec, result, { backend, ids, durationMs: 1 });
      expect(AttackRunRecord.parse(record)).toEqual(record);
      expect(record.examples).toEqual({ count: 8, ids });
      expect(record.spec.seed).toBe(0);
      expect(record.implementation).toMatch(/\/\d+$/);
      expect(record.perExample?.robust).toHaveLength(8);
      expect(record.cleanAccuracy).toBe(1);
      result.xAdv.dispose();
    }
    await expect(
      runAttack(net.model, x, labels, { attack: 'pgd', threat: 'linf', eps: -1, steps: 1, alpha: 0.1 }),
    ).rejects.toThrow();
    x.dispose();
    net.dispose();
  });
});
