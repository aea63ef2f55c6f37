import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fabTargeted } from '../../../src/engine/attacks/fab';
import { projectOntoHyperplane } from '../../../src/engine/attacks/fab-projection';
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

/**
 * Independent reference for the box-constrained projection: the smallest step size s (l_inf radius
 * or l_2 multiplier) whose clipped move d(s) reaches the hyperplane, by bisection.
 */
function bisectionProjection(t: number[], w: number[], b: number, threat: 'linf' | 'l2'): number[] {
  const c = w.reduce((acc, wi, i) => acc + wi * (t[i] ?? 0), -b);
  const s = c >= 0 ? 1 : -1;
  const move = (size: number) =>
    w.map((wi, i) => {
      const ti = t[i] ?? 0;
      if (threat === 'l2' ? Math.abs(wi) <= 1e-8 : wi === 0) return 0;
      const raw = threat === 'linf' ? -Math.sign(s * wi) * size : -size * s * wi;
      return Math.min(Math.max(raw, -ti), 1 - ti);
    });
  const reach = (size: number) => move(size).reduce((acc, di, i) => acc + (w[i] ?? 0) * di, 0) * s + s * c;
  if (reach(1e9) > 0) return move(1e9);
  let lo = 0;
  let hi = 1e9;
  for (let k = 0; k < 200; k++) {
    const mid = (lo + hi) / 2;
    if (reach(mid) > 0) lo = mid;
    else hi = mid;
  }
  return move(hi);
}

describe('FAB projection onto a hyperplane within the box', () => {
  for (const threat of ['linf', 'l2'] as const) {
    it(`matches a bisection reference and reaches the hyperplane when it can (${threat})`, () => {
      const rng = new Rng(3);
      let feasible = 0;
      let infeasible = 0;
      for (let trial = 0; trial < 300; trial++) {
        const n = 1 + rng.int(12);
        const t = Array.from({ length: n }, () => (rng.uniform() < 0.15 ? rng.int(2) : rng.uniform()));
        const w = Array.from({ length: n }, () => (rng.uniform() < 0.15 ? 0 : rng.normal()));
        const b = w.reduce((acc, wi, i) => acc + wi * (t[i] ?? 0), 0) + rng.normal() * (trial % 3 === 0 ? 5 : 0.5);
        const out = new Float64Array(n);
        projectOntoHyperplane(threat, t, w, b, out);
        const expected = bisectionProjection(t, w, b, threat);
        out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] ?? 0, 6));
        out.forEach((v, i) => {
          expect((t[i] ?? 0) + v).toBeGreaterThanOrEqual(-1e-12);
          expect((t[i] ?? 0) + v).toBeLessThanOrEqual(1 + 1e-12);
        });
        const reached = w.reduce((acc, wi, i) => acc + wi * ((t[i] ?? 0) + (out[i] ?? 0)), 0);
        if (Math.abs(reached - b) < 1e-9) feasible++;
        else infeasible++;
      }
      expect(feasible).toBeGreaterThan(100);
      expect(infeasible).toBeGreaterThan(10);
    });
  }
});

describe.each(['cpu', 'wasm'] as const)('FAB-T on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  for (const threat of ['linf', 'l2'] as const) {
    it(`finds the minimal ${threat} perturbation of a binary linear model`, async () => {
      const rng = new Rng(12);
      const D = 48;
      const m = linearModel(randomMatrix(rng, D, 2, 0.5), [0.2, -0.1]);
      const { x, values } = randomImages(rng, 6, 4, 4, 3, 0.3, 0.7);
      const labels = values.map((v) => {
        const z = logitsOf(m, v);
        return (z[0] ?? 0) >= (z[1] ?? 0) ? 0 : 1;
      });
      const minimal = values.map((v, i) => {
        const label = labels[i] ?? 0;
        const diff = m.w.map((row) => (row[label] ?? 0) - (row[1 - label] ?? 0));
        const dual =
          threat === 'linf'
            ? diff.reduce((a, b) => a + Math.abs(b), 0)
            : Math.sqrt(diff.reduce((a, b) => a + b * b, 0));
        return marginOf(logitsOf(m, v), label) / dual;
      });
      const eps = Math.max(...minimal) * 1.01;
      const before = tf.memory().numTensors;
      const r = await fabTargeted(m.model, x, labels, { threat, eps, iterations: 100 });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(r.targetsUsed).toBe(1);
      minimal.forEach((mn, i) => {
        expect(r.minimalNorm[i]).toBeGreaterThanOrEqual(mn * (1 - 1e-4));
        expect(r.minimalNorm[i]).toBeLessThanOrEqual(mn * 1.01);
      });
      expect(r.robust.every((rb) => !rb)).toBe(true);
      console.log(
        `${backend} ${threat}: FAB minimal norm / analytic = ${Array.from(r.minimalNorm, (v, i) => (v / (minimal[i] ?? 1)).toFixed(5)).join(', ')}`,
      );
      tf.dispose([x, r.xAdv]);
      m.dispose();
    });
  }

  it('keeps to the threat model and the box on an MLP and breaks examples', async () => {
    const net = mlp(5, 48, 16, 10);
    const { x } = randomImages(new Rng(2), 12, 4, 4, 3);
    const labels = predictedLabels(net.model, x);
    for (const threat of ['linf', 'l2'] as const) {
      const eps = threat === 'linf' ? 0.1 : 0.6;
      const r = await fabTargeted(net.model, x, labels, {
        threat,
        eps,
        iterations: 10,
        targets: 3,
        restarts: 2,
        seed: 4,
      });
      const s = perturbationStats(x, r.xAdv);
      expect(Math.max(...(threat === 'linf' ? s.linf : s.l2))).toBeLessThanOrEqual(eps + 1e-5);
      expect(s.min).toBeGreaterThanOrEqual(0);
      expect(s.max).toBeLessThanOrEqual(1);
      expect(r.success.some(Boolean)).toBe(true);
      r.robust.forEach((rb, i) => expect(rb).toBe(!((r.minimalNorm[i] ?? Infinity) <= eps)));
      r.xAdv.dispose();
    }
    x.dispose();
    net.dispose();
  });
});
