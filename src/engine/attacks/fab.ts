import * as tf from '@tensorflow/tfjs-core';
import { projectOntoHyperplane } from './fab-projection';
import { QueryCounter, finishAttack, forward, lossAndGradient, oneHot, predictions, startAttack } from './oracle';
import { exampleStreams } from './streams';
import { pick, takeRows } from './tracking';
import {
  throwIfAborted,
  type AttackResult,
  type Classifier,
  type CommonAttackOptions,
  type Labels,
  type ThreatModel,
} from './types';

/**
 * FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020) as AutoAttack runs it
 * (fab_base.py, targeted): for each target class it linearises z_t - z_y, steps to the box-constrained
 * projection onto that hyperplane from the current point and from the clean point (mixed by alpha,
 * overshoot eta), and after each success pulls back towards the clean point by beta, keeping the
 * smallest adversarial perturbation found. An example counts as broken when that perturbation is
 * within eps. FAB minimises the perturbation, so it needs the gradient of one logit difference per
 * step and the model's prediction at the new point.
 */

export interface FabTargetedOptions extends CommonAttackOptions {
  threat: ThreatModel;
  eps: number;
  /** Default 100. */
  iterations?: number;
  /** Default 9, capped at classes - 1. */
  targets?: number;
  /** Restarts per target; later ones start at a random point (radius eps / 2). Default 1. */
  restarts?: number;
  /** Default 0.1. */
  alphaMax?: number;
  /** Overshoot, default 1.05. */
  eta?: number;
  /** Backward step after a success, default 0.9. */
  beta?: number;
}

export interface FabResult extends AttackResult {
  targetsUsed: number;
  /** The smallest adversarial perturbation found per example, in the threat model's norm (Infinity if none). */
  minimalNorm: Float64Array;
}

function normOf(values: ArrayLike<number>, threat: ThreatModel): number {
  let acc = 0;
  for (let i = 0; i < values.length; i++)
    acc = threat === 'linf' ? Math.max(acc, Math.abs(values[i])) : acc + values[i] * values[i];
  return threat === 'linf' ? acc : Math.sqrt(acc);
}

interface FabRunResult {
  /** Flattened adversarial points (rows without success hold the clean point). */
  adv: Float32Array;
  /** Norm of the smallest adversarial perturbation per row, Infinity if none. */
  best: Float64Array;
}

/** One targeted FAB run on a batch of correctly classified examples (attack_single_run). */
async function fabRun(
  model: Classifier,
  x: tf.Tensor4D,
  y: Int32Array,
  targets: Int32Array,
  classes: number,
  options: FabTargetedOptions,
  start: { seed: number; ids: Int32Array; round: number } | null,
  counter: QueryCounter,
  report: (done: number) => void,
): Promise<FabRunResult> {
  const { threat, eps } = options;
  const iterations = options.iterations ?? 100;
  const alphaMax = options.alphaMax ?? 0.1;
  const eta = options.eta ?? 1.05;
  const beta = options.beta ?? 0.9;
  const n = y.length;
  const d = x.shape[1] * x.shape[2] * x.shape[3];
  const x0 = Float32Array.from(await x.data());
  const adv = Float32Array.from(x0);
  const best = new Float64Array(n).fill(Infinity);
  const x1 = Float32Array.from(x0);
  if (start) {
    // Random start of radius min(best, eps) / 2 = eps / 2 (no success yet).
    const streams = exampleStreams(start.seed, start.ids, 'fab-t', start.round);
    streams.forEach((rng, r) => {
      const t = new Float64Array(d);
      for (let j = 0; j < d; j++) t[j] = threat === 'linf' ? 2 * rng.uniform() - 1 : rng.normal();
      const scale = (eps * 0.5) / normOf(t, threat);
      for (let j = 0; j < d; j++) x1[r * d + j] = Math.min(Math.max(x0[r * d + j] + scale * t[j], 0), 1);
    });
  }
  // Gradient of z_t - z_y, the linearised boundary towards the target.
  const direction = tf.tidy(() => tf.sub(oneHot(targets, classes), oneHot(y, classes)) as tf.Tensor2D);
  const d1 = new Float64Array(d);
  const d2 = new Float64Array(d);
  try {
    for (let it = 0; it < iterations; it++) {
      throwIfAborted(options.signal);
      const current = tf.tensor4d(x1, x.shape);
      const g = lossAndGradient(model, current, (z) => tf.sum(tf.mul(z, direction), 1) as tf.Tensor1D, counter);
      const [df, dg] = await Promise.all([g.loss.data(), g.grad.data()]);
      tf.dispose([g.logits, g.loss, g.grad, current]);
      for (let r = 0; r < n; r++) {
        const off = r * d;
        const w = dg.subarray(off, off + d);
        const p1 = x1.subarray(off, off + d);
        const p0 = x0.subarray(off, off + d);
        let b = -df[r];
        for (let j = 0; j < d; j++) b += w[j] * p1[j];
        projectOntoHyperplane(threat, p1, w, b, d1);
        projectOntoHyperplane(threat, p0, w, b, d2);
        const a1 = Math.max(normOf(d1, threat), 1e-8);
        const a2 = Math.max(normOf(d2, threat), 1e-8);
        const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), alphaMax);
        for (let j = 0; j < d; j++) {
          const v = (p1[j] + eta * d1[j]) * (1 - alpha) + (p0[j] + eta * d2[j]) * alpha;
          p1[j] = Math.min(Math.max(v, 0), 1);
        }
      }
      const moved = tf.tensor4d(x1, x.shape);
      const logits = forward(model, moved, counter);
      const pred = await predictions(logits);
      tf.dispose([moved, logits]);
      for (let r = 0; r < n; r++) {
        if (pred[r] === y[r]) continue;
        const off = r * d;
        const delta = new Float64Array(d);
        for (let j = 0; j < d; j++) delta[j] = x1[off + j] - x0[off + j];
        const size = normOf(delta, threat);
        if (size < best[r]) {
          best[r] = size;
          adv.set(x1.subarray(off, off + d), off);
        }
        for (let j = 0; j < d; j++) x1[off + j] = x0[off + j] + delta[j] * beta;
      }
      report(it + 1);
    }
  } finally {
    direction.dispose();
  }
  return { adv, best };
}

/**
 * FAB-T on the examples the model classifies correctly, one target class at a time (the 2nd..
 * (targets+1)-th highest clean logits), each only on examples not yet broken within eps.
 */
export async function fabTargeted(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: FabTargetedOptions,
): Promise<FabResult> {
  const iterations = options.iterations ?? 100;
  const restarts = options.restarts ?? 1;
  const start = await startAttack(model, x, labels, options.ids);
  const { y, ids, counter, clean } = start;
  const targetsUsed = Math.min(options.targets ?? 9, clean.classes - 1);
  const ranking = tf.topk(clean.logits, targetsUsed + 1);
  const ranked = (await ranking.indices.data()) as Int32Array;
  tf.dispose([ranking.values, ranking.indices, clean.logits]);

  const n = y.length;
  const d = x.shape[1] * x.shape[2] * x.shape[3];
  const result = Float32Array.from(await x.data());
  const robust = [...clean.correct];
  const minimalNorm = new Float64Array(n).fill(Infinity);
  const total = targetsUsed * restarts * iterations;
  for (let rank = 2; rank <= targetsUsed + 1; rank++) {
    for (let restart = 0; restart < restarts; restart++) {
      const rows = Array.from(y.keys()).filter((i) => robust[i]);
      if (rows.length === 0) break;
      const round = (rank - 2) * restarts + restart;
      const xs = takeRows(x, rows);
      const targets = Int32Array.from(rows, (r) => ranked[r * (targetsUsed + 1) + rank - 1]);
      try {
        const run = await fabRun(
          model,
          xs,
          pick(y, rows),
          targets,
          clean.classes,
          options,
          restart > 0 ? { seed: options.seed ?? 0, ids: pick(ids, rows), round } : null,
          counter,
          (done) =>
            options.onProgress?.({ attack: 'fab-t', done: round * iterations + done, total, active: rows.length }),
        );
        rows.forEach((r, j) => {
          minimalNorm[r] = Math.min(minimalNorm[r], run.best[j]);
          if (run.best[j] <= options.eps) {
            robust[r] = false;
            result.set(run.adv.subarray(j * d, (j + 1) * d), r * d);
          }
        });
      } finally {
        xs.dispose();
      }
    }
  }
  const xAdv = tf.tensor4d(result, x.shape);
  const outcome = await finishAttack(start, xAdv, options.threat);
  return { ...outcome, targetsUsed, minimalNorm };
}
