import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { dbatLoss, klFromLogits, martLoss, smoothTargets, tradesLoss } from '../../../src/engine/finetune';
import { Rng } from '../../../src/engine/rng';
import { selectBackend } from '../../../src/engine/backend';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { useBackend } from '../../helpers/backend';
import { softmaxShaders } from '../webgpu/softmax-checks';
import { useSwiftShader } from '../webgpu/swiftshader';

/** Float64 references of the formulas, on plain arrays. */
function logSoftmax(z: number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
  return z.map((v) => v - lse);
}
const softmax = (z: number[]) => logSoftmax(z).map(Math.exp);
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const ce = (z: number[], t: number[]) => -logSoftmax(z).reduce((s, l, k) => s + (t[k] ?? 0) * l, 0);
const kl = (p: number[], q: number[]) => {
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  return lp.reduce((s, l, k) => s + Math.exp(l) * (l - (lq[k] ?? 0)), 0);
};

function refTrades(clean: number[][], adv: number[][], t: number[][], beta: number): number {
  return mean(clean.map((z, i) => ce(z, t[i] ?? []))) + beta * mean(clean.map((z, i) => kl(z, adv[i] ?? [])));
}

function refMart(clean: number[][], adv: number[][], t: number[][], y: number[], beta: number): number {
  const boosted = adv.map((z, i) => {
    const q = softmax(z);
    const label = y[i] ?? 0;
    let other = -1;
    q.forEach((v, k) => {
      if (k !== label && (other < 0 || v > (q[other] ?? 0))) other = k;
    });
    return ce(z, t[i] ?? []) - Math.log(1.0001 - (q[other] ?? 0) + 1e-12);
  });
  const robust = clean.map((z, i) => {
    const p = softmax(z);
    const q = softmax(adv[i] ?? []);
    const klv = p.reduce((s, pk, k) => s + pk * (Math.log(pk) - Math.log((q[k] ?? 0) + 1e-12)), 0);
    return klv * (1.0000001 - (p[y[i] ?? 0] ?? 0));
  });
  return mean(boosted) + beta * mean(robust);
}

function refDbat(logits: number[][], t: number[][], smoothing: number): number {
  const n = t.length;
  const c = t[0]?.length ?? 0;
  const rows = logits.map((z, r) => {
    const base = t[r % n] ?? [];
    const target = Array.from({ length: 2 * c }, (_, k) => {
      const inHalf = r < n ? k < c : k >= c;
      return (1 - smoothing) * (inHalf ? (base[k % c] ?? 0) : 0) + smoothing / (2 * c);
    });
    return ce(z, target);
  });
  return mean(rows);
}

function randomRows(rng: Rng, n: number, k: number, scale: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: k }, () => rng.normal() * scale));
}

function oneHotRows(labels: number[], k: number): number[][] {
  return labels.map((y) => Array.from({ length: k }, (_, j) => (j === y ? 1 : 0)));
}

async function value(t: tf.Scalar): Promise<number> {
  const v = (await t.data())[0] ?? NaN;
  t.dispose();
  return v;
}

// On webgpu (SwiftShader) the losses' softmax and log-softmax are the engine's kernels (kernels/softmax.ts).
describe.each(['cpu', 'webgpu'] as const)('fine-tuning losses against float64 references on %s', (backend) => {
  beforeAll(async () => {
    if (backend === 'cpu') return useBackend('cpu');
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  const rng = new Rng(7);
  const n = 6;
  const c = 5;
  const clean = randomRows(rng, n, c, 3);
  const adv = clean.map((row) => row.map((v) => v + rng.normal() * 2));
  const labels = [0, 4, 2, 2, 1, 3];
  // Label-smoothed targets, one row MixUp-mixed.
  const targets = oneHotRows(labels, c).map((row) => row.map((v) => 0.9 * v + 0.1 / c));
  targets[3] = [0.5, 0, 0.3, 0.2, 0];

  it('label smoothing and KL', async () => {
    const t = tf.tensor2d(oneHotRows(labels, c));
    const smoothed = (await smoothTargets(t, 0.1).array()) as number[][];
    smoothed.forEach((row, i) => row.forEach((v, k) => expect(v).toBeCloseTo(k === labels[i] ? 0.92 : 0.02, 6)));
    const klv = await klFromLogits(tf.tensor2d(clean), tf.tensor2d(adv)).data();
    clean.forEach((z, i) => expect(klv[i]).toBeCloseTo(kl(z, adv[i] ?? []), 4));
    expect(
      Array.from(await klFromLogits(tf.tensor2d(clean), tf.tensor2d(clean)).data()).every((v) => Math.abs(v) < 1e-5),
    ).toBe(true);
    t.dispose();
  });

  it('TRADES: CE(clean) + beta * KL(p(clean) || p(adv))', async () => {
    for (const beta of [0, 1, 6]) {
      const out = tradesLoss(tf.tensor2d(clean), tf.tensor2d(adv), tf.tensor2d(targets), beta);
      const got = await value(out.loss);
      tf.dispose([out.natural, out.robust]);
      const want = refTrades(clean, adv, targets, beta);
      console.log(`TRADES beta ${beta}: tfjs ${got.toFixed(7)}, float64 ${want.toFixed(7)}`);
      expect(Math.abs(got - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    }
  });

  it('MART: boosted CE + beta * KL weighted by 1 - p_y(clean)', async () => {
    for (const beta of [0, 6]) {
      const out = martLoss(
        tf.tensor2d(clean),
        tf.tensor2d(adv),
        tf.tensor2d(targets),
        tf.tensor2d(oneHotRows(labels, c)),
        beta,
      );
      const got = await value(out.loss);
      tf.dispose([out.boosted, out.robust]);
      const want = refMart(clean, adv, targets, labels, beta);
      console.log(`MART beta ${beta}: tfjs ${got.toFixed(7)}, float64 ${want.toFixed(7)}`);
      expect(Math.abs(got - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    }
  });

  it('MART and TRADES gradients w.r.t. both logit inputs match central differences of the float64 formula', async () => {
    const beta = 6;
    clearDispatchedWebgpuShaders();
    const hard = tf.tensor2d(oneHotRows(labels, c));
    const t = tf.tensor2d(targets);
    for (const [name, loss, ref] of [
      [
        'mart',
        (a: tf.Tensor, b: tf.Tensor) => martLoss(a as tf.Tensor2D, b as tf.Tensor2D, t, hard, beta).loss,
        (a: number[][], b: number[][]) => refMart(a, b, targets, labels, beta),
      ],
      [
        'trades',
        (a: tf.Tensor, b: tf.Tensor) => tradesLoss(a as tf.Tensor2D, b as tf.Tensor2D, t, beta).loss,
        (a: number[][], b: number[][]) => refTrades(a, b, targets, beta),
      ],
    ] as const) {
      const [gClean, gAdv] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(a, b))([
        tf.tensor2d(clean),
        tf.tensor2d(adv),
      ]);
      const got = [(await gClean?.array()) as number[][], (await gAdv?.array()) as number[][]];
      tf.dispose([gClean, gAdv].filter((g): g is tf.Tensor => g !== undefined));
      let worst = 0;
      const h = 1e-5;
      for (const which of [0, 1] as const) {
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < c; k++) {
            const shifted = (d: number) => {
              const a = clean.map((r) => [...r]);
              const b = adv.map((r) => [...r]);
              const target = which === 0 ? a : b;
              const row = target[i] ?? [];
              row[k] = (row[k] ?? 0) + d;
              return ref(a, b);
            };
            const fd = (shifted(h) - shifted(-h)) / (2 * h);
            worst = Math.max(worst, Math.abs((got[which]?.[i]?.[k] ?? NaN) - fd));
          }
        }
      }
      console.log(`${name}: worst |gradient - central difference| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(2e-4);
    }
    tf.dispose([hard, t]);
    if (backend === 'webgpu') expect(dispatchedWebgpuShaders()).toEqual(expect.arrayContaining(softmaxShaders(true)));
  });

  it('DBAT: CE over [clean; adversarial] with labels [y; y + C] and smoothing over 2C outputs', async () => {
    const logits = randomRows(rng, 2 * n, 2 * c, 2);
    for (const smoothing of [0, 0.1, 0.5]) {
      const got = await value(dbatLoss(tf.tensor2d(logits), tf.tensor2d(targets), smoothing));
      const want = refDbat(logits, targets, smoothing);
      console.log(`DBAT smoothing ${smoothing}: tfjs ${got.toFixed(7)}, float64 ${want.toFixed(7)}`);
      expect(Math.abs(got - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    }
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    const a = tf.tensor2d(clean);
    const b = tf.tensor2d(adv);
    const t = tf.tensor2d(targets);
    const hard = tf.tensor2d(oneHotRows(labels, c));
    const both = tf.tidy(() => tf.concat([tf.concat([a, b], 1), tf.concat([b, a], 1)], 0)) as tf.Tensor2D;
    const outs = [tradesLoss(a, b, t, 6), martLoss(a, b, t, hard, 6), { loss: dbatLoss(both, t, 0.1) }];
    for (const out of outs) tf.dispose(Object.values(out));
    tf.dispose([a, b, t, hard, both]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
