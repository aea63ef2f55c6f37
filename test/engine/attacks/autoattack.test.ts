import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUTOATTACK_STANDARD_COMPONENTS,
  AutoAttackRecord,
  AutoAttackSpec,
  attackLabel,
  epsFrom255,
  standardAutoAttack,
  type AutoAttackComponent,
} from '../../../src/shared/attack-config';
import { apgd, apgdTargeted } from '../../../src/engine/attacks/apgd';
import { autoAttack } from '../../../src/engine/attacks/autoattack';
import { fabTargeted } from '../../../src/engine/attacks/fab';
import { blackBoxCheck } from '../../../src/engine/attacks/masking-checks';
import { autoAttackRecord } from '../../../src/engine/attacks/run';
import { square } from '../../../src/engine/attacks/square';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { mlp, perturbationStats, predictedLabels, randomImages } from './models';

describe('AutoAttack configuration', () => {
  it("holds exactly the published 'standard' composition and budgets", () => {
    expect(AUTOATTACK_STANDARD_COMPONENTS).toEqual([
      { attack: 'apgd-ce', iterations: 100, restarts: 1, rho: 0.75 },
      { attack: 'apgd-t', iterations: 100, targets: 9, restarts: 1, rho: 0.75 },
      { attack: 'fab-t', iterations: 100, targets: 9, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9 },
      { attack: 'square', queries: 5000, pInit: 0.8, restarts: 1 },
    ]);
    expect(Object.isFrozen(AUTOATTACK_STANDARD_COMPONENTS)).toBe(true);
    const spec = standardAutoAttack('linf', epsFrom255(8), 0);
    expect(spec.components).toEqual(AUTOATTACK_STANDARD_COMPONENTS);
    expect(spec.eps).toBeCloseTo(8 / 255, 12);
    expect(attackLabel(spec)).toBe('AutoAttack (standard)');
  });

  it("refuses to call reduced budgets 'standard'; a 'custom' run says so", () => {
    const standard = standardAutoAttack('l2', 0.5, 1);
    const reduced = standard.components.map((c): AutoAttackComponent =>
      c.attack === 'square' ? { ...c, queries: 1000 } : c,
    );
    expect(AutoAttackSpec.safeParse({ ...standard, components: reduced }).success).toBe(false);
    expect(AutoAttackSpec.safeParse({ ...standard, components: standard.components.slice(0, 3) }).success).toBe(false);
    expect(AutoAttackSpec.safeParse({ ...standard, components: [...standard.components].reverse() }).success).toBe(
      false,
    );
    const custom = AutoAttackSpec.parse({ ...standard, version: 'custom', components: reduced });
    expect(attackLabel(custom)).toBe('AutoAttack (custom)');
  });
});

const H = 4;
const W = 4;
const C = 3;

/** Reduced budgets for the mechanics tests: labelled custom. */
const MINI: AutoAttackComponent[] = [
  { attack: 'apgd-ce', iterations: 10, restarts: 1, rho: 0.75 },
  { attack: 'apgd-t', iterations: 10, targets: 3, restarts: 1, rho: 0.75 },
  { attack: 'fab-t', iterations: 10, targets: 3, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9 },
  { attack: 'square', queries: 200, pInit: 0.8, restarts: 1 },
];

describe.each(['cpu', 'wasm'] as const)('AutoAttack on %s', (backend) => {
  let net: ReturnType<typeof mlp>;
  let x: tf.Tensor4D;
  let labels: number[];
  beforeAll(async () => {
    await useBackend(backend);
    net = mlp(11, H * W * C, 32, 10);
    x = randomImages(new Rng(13), 30, H, W, C).x;
    labels = predictedLabels(net.model, x);
    // A few examples start misclassified, as on real data.
    labels[0] = ((labels[0] ?? 0) + 1) % 10;
    labels[1] = ((labels[1] ?? 0) + 1) % 10;
  });
  afterAll(() => {
    x.dispose();
    net.dispose();
  });

  for (const threat of ['linf', 'l2'] as const) {
    it(`its worst case is no better than any of its attacks run alone (${threat})`, async () => {
      const eps = threat === 'linf' ? 0.03 : 0.15;
      const seed = 5;
      const spec = AutoAttackSpec.parse({
        attack: 'autoattack',
        version: 'custom',
        threat,
        eps,
        seed,
        components: MINI,
      });
      const before = tf.memory().numTensors;
      const aa = await autoAttack(net.model, x, labels, spec);
      expect(tf.memory().numTensors).toBe(before + 1);

      const alone = [
        await apgd(net.model, x, labels, { threat, eps, seed, iterations: 10 }),
        await apgdTargeted(net.model, x, labels, { threat, eps, seed, iterations: 10, targets: 3 }),
        await fabTargeted(net.model, x, labels, { threat, eps, seed, iterations: 10, targets: 3 }),
        await square(net.model, x, labels, { threat, eps, seed, queries: 200 }),
      ];
      const summary = alone.map((r, k) => `${MINI[k]?.attack} ${r.robust.filter(Boolean).length}`).join(', ');
      console.log(
        `${backend} ${threat}: robust of 30 alone: ${summary}; AutoAttack stages ${aa.stages.map((s) => `${s.attack} ${(s.robustAccuracy * 30).toFixed(0)}`).join(', ')}`,
      );
      for (const r of alone) {
        aa.robust.forEach((robust, i) => {
          if (robust) expect(r.robust[i]).toBe(true);
        });
      }
      // With per-example random streams each attack inside AutoAttack breaks exactly the examples
      // it breaks alone, among those still robust when its turn comes.
      const aloneBroken = aa.cleanCorrect.map((c, i) => c && alone.some((r) => !r.robust[i]));
      expect(aa.robust).toEqual(aa.cleanCorrect.map((c, i) => c && !aloneBroken[i]));
      aa.brokenBy.forEach((by, i) => {
        if (by === null || by === 'clean') return;
        const first = alone.findIndex((r) => !r.robust[i]);
        expect(by).toBe(MINI[first]?.attack);
      });

      expect(aa.stages.map((s) => s.attack)).toEqual(['apgd-ce', 'apgd-t', 'fab-t', 'square']);
      let previous = aa.cleanAccuracy;
      for (const stage of aa.stages) {
        expect(stage.robustAccuracy).toBeLessThanOrEqual(previous);
        expect(stage.robustAccuracy).toBeCloseTo(previous - stage.broken / 30, 10);
        previous = stage.robustAccuracy;
      }
      expect(aa.robustAccuracy).toBeCloseTo(previous, 10);
      expect(aa.cleanAccuracy).toBeCloseTo(28 / 30, 10);
      expect(aa.brokenBy.slice(0, 2)).toEqual(['clean', 'clean']);
      expect(aa.stages.reduce((acc, s) => acc + s.broken, 0)).toBeGreaterThan(0);
      const s = perturbationStats(x, aa.xAdv);
      expect(Math.max(...(threat === 'linf' ? s.linf : s.l2))).toBeLessThanOrEqual(eps + 1e-5);
      expect(s.min).toBeGreaterThanOrEqual(0);
      expect(s.max).toBeLessThanOrEqual(1);

      const record = autoAttackRecord(spec, aa, { backend, ids: Array.from(labels.keys()) });
      expect(AutoAttackRecord.parse(record).spec.version).toBe('custom');
      expect(blackBoxCheck(aa.stages)?.flagged).toBe(false);
      tf.dispose([aa.xAdv, ...alone.map((r) => r.xAdv)]);
    });
  }

  it('gives the same per-example result for any batch size', async () => {
    const spec = AutoAttackSpec.parse({
      attack: 'autoattack',
      version: 'custom',
      threat: 'linf',
      eps: 0.03,
      seed: 2,
      components: MINI,
    });
    const whole = await autoAttack(net.model, x, labels, spec);
    const chunked = await autoAttack(net.model, x, labels, spec, { batchSize: 7 });
    expect(chunked.robust).toEqual(whole.robust);
    expect(chunked.brokenBy).toEqual(whole.brokenBy);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(whole.xAdv, chunked.xAdv))).dataSync()[0]);
    expect(diff).toBeLessThan(1e-6);
    tf.dispose([whole.xAdv, chunked.xAdv]);
  });

  it('records a skipped APGD-T and capped FAB-T targets on a 3-class model', async () => {
    const three = mlp(12, H * W * C, 8, 3);
    const y3 = predictedLabels(three.model, x);
    const spec = AutoAttackSpec.parse({
      attack: 'autoattack',
      version: 'custom',
      threat: 'linf',
      eps: 0.02,
      seed: 0,
      components: MINI,
    });
    const aa = await autoAttack(three.model, x, y3, spec);
    expect(aa.stages[1]?.skipped).toMatch(/at least 4 classes/);
    expect(aa.stages[2]?.targetsUsed).toBe(2);
    expect(aa.deviations.some((d) => d.startsWith('apgd-t skipped'))).toBe(true);
    expect(aa.deviations.some((d) => d.startsWith('fab-t used 2 target classes'))).toBe(true);
    aa.xAdv.dispose();
    three.dispose();
  });
});

describe('AutoAttack standard, full budgets', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('runs APGD-CE, APGD-T, FAB-T and Square with the published budgets on a tiny model', async () => {
    const net = mlp(21, H * W * C, 16, 10);
    const { x } = randomImages(new Rng(22), 6, H, W, C);
    const labels = predictedLabels(net.model, x);
    const spec = standardAutoAttack('linf', epsFrom255(2), 7);
    const started = performance.now();
    const aa = await autoAttack(net.model, x, labels, spec);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `standard AutoAttack, 6 examples of 4x4x3, cpu: ${seconds.toFixed(1)} s; ` +
        `stages ${aa.stages.map((s) => `${s.attack}: attacked ${s.attacked}, broke ${s.broken}`).join('; ')}; ` +
        `${aa.gradientCalls} gradient and ${aa.forwardCalls} forward passes`,
    );
    expect(aa.stages.map((s) => s.attack)).toEqual(['apgd-ce', 'apgd-t', 'fab-t', 'square']);
    expect(aa.stages.every((s) => s.attacked > 0 && s.skipped === undefined)).toBe(true);
    expect(aa.robust.some(Boolean)).toBe(true);
    // Some example stayed robust through everything, so every attack spent its whole budget on a batch:
    // APGD-CE 1 + 100 gradients, APGD-T 9 targets x 101, FAB-T 9 targets x 100 (+ a forward each),
    // Square 5000 queries after its start; plus one clean and one final forward per attack and for AutoAttack.
    expect(aa.gradientCalls).toBe(101 + 9 * 101 + 9 * 100);
    expect(aa.forwardCalls).toBe(2 + 2 + (2 + 900) + (3 + 5000) + 2);
    expect(aa.stages[1]?.targetsUsed).toBe(9);
    expect(aa.stages[2]?.targetsUsed).toBe(9);
    tf.dispose([x, aa.xAdv]);
    net.dispose();
  });
});
