import * as tf from '@tensorflow/tfjs-core';
import { ThreatBall, steepestDirection } from './geometry';
import { crossEntropyLoss, marginLoss } from './losses';
import {
  QueryCounter,
  finishAttack,
  forward,
  lossAndGradient,
  oneHot,
  predictions,
  readAndDispose,
  startAttack,
} from './oracle';
import { pgdStart } from './start';
import { exampleStreams } from './streams';
import { BestPoints, pick, replaceRows, takeRows } from './tracking';
import {
  throwIfAborted,
  type AttackResult,
  type Classifier,
  type CommonAttackOptions,
  type Labels,
  type ThreatModel,
} from './types';

export interface ObjectiveContext {
  /** model(xAdv), already computed inside the gradient, so the objective need not run the model again. */
  logits: tf.Tensor2D;
  /** One-hot labels, float32 [N, C]. */
  yOneHot: tf.Tensor2D;
}

/**
 * A differentiable per-example objective for PGD to maximise, e.g. CE + lambda * MI (PGD-MI) or a
 * feature distance (PGD-fea). PGD ascends the gradient of its sum over the batch.
 */
export type AttackObjective = (
  xAdv: tf.Tensor4D,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  context: ObjectiveContext,
) => tf.Tensor1D;

export interface PgdOptions extends CommonAttackOptions {
  threat: ThreatModel;
  eps: number;
  steps: number;
  /** Step size; default eps / 4 (2/255 at eps 8/255, the paper's PGD-20). */
  alpha?: number;
  randomStart?: boolean;
  /** Further runs from new random starts, only on examples not yet misclassified. */
  restarts?: number;
  /** 'best': a misclassified iterate where one was visited, else the highest-loss iterate; 'last': the final iterate. */
  keep?: 'best' | 'last';
  /** 'ce' (default), 'margin' (the CW l_inf attack) or a custom objective. */
  loss?: 'ce' | 'margin' | AttackObjective;
}

function objectiveOf(loss: PgdOptions['loss']): AttackObjective {
  if (loss === undefined || loss === 'ce') return (_xAdv, _x, _y, c) => crossEntropyLoss(c.logits, c.yOneHot);
  if (loss === 'margin') return (_xAdv, _x, _y, c) => marginLoss(c.logits, c.yOneHot);
  return loss;
}

/** FGSM: one step of size eps along sign(grad CE) (l_inf) or grad / ||grad||_2 (l_2). */
export async function fgsm(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: { threat: ThreatModel; eps: number } & CommonAttackOptions,
): Promise<AttackResult> {
  const start = await startAttack(model, x, labels, undefined);
  const { y, counter, clean } = start;
  clean.logits.dispose();
  const yOneHot = oneHot(y, clean.classes);
  const ball = new ThreatBall(x, options.eps, options.threat);
  const g = lossAndGradient(model, x, (z) => crossEntropyLoss(z, yOneHot), counter);
  const xAdv = tf.tidy(() => ball.project(tf.add(x, tf.mul(steepestDirection(g.grad, options.threat), options.eps))));
  tf.dispose([g.logits, g.loss, g.grad]);
  ball.dispose();
  const result = await finishAttack(start, xAdv, options.threat, (_xa, z) => crossEntropyLoss(z, yOneHot));
  yOneHot.dispose();
  return result;
}

interface RunOutcome {
  points: tf.Tensor4D;
  loss: Float32Array;
  wrong: boolean[];
}

/** One PGD run on a batch; returns the kept point per example, its objective and whether it is misclassified. */
async function pgdRun(
  model: Classifier,
  x: tf.Tensor4D,
  y: Int32Array,
  ids: Int32Array,
  classes: number,
  options: PgdOptions,
  round: number,
  counter: QueryCounter,
): Promise<RunOutcome> {
  const { threat, eps, steps } = options;
  const alpha = options.alpha ?? eps / 4;
  const keep = options.keep ?? 'best';
  const objective = objectiveOf(options.loss);
  const yOneHot = oneHot(y, classes);
  const yTensor = tf.tensor1d(y, 'int32');
  const ball = new ThreatBall(x, eps, threat);
  const lossFn = (z: tf.Tensor2D, xv: tf.Tensor4D) => objective(xv, x, yTensor, { logits: z, yOneHot });

  let current: tf.Tensor4D;
  if (options.randomStart ?? true) {
    const noise = pgdStart(exampleStreams(options.seed ?? 0, ids, 'pgd', round), x.shape, threat, eps);
    current = tf.tidy(() => ball.project(tf.add(x, noise)));
    noise.dispose();
  } else {
    current = tf.clone(x);
  }
  const best = keep === 'best' ? new BestPoints(current) : null;

  const observe = async (point: tf.Tensor4D, logits: tf.Tensor2D, loss: tf.Tensor1D) => {
    if (!best) return;
    const [pred, values] = await Promise.all([predictions(logits), loss.data()]);
    best.update(
      point,
      values,
      Array.from(y, (label, i) => pred[i] !== label),
    );
  };

  try {
    for (let step = 0; step < steps; step++) {
      throwIfAborted(options.signal);
      const g = lossAndGradient(model, current, lossFn, counter);
      await observe(current, g.logits, g.loss);
      const next = tf.tidy(() => ball.project(tf.add(current, tf.mul(steepestDirection(g.grad, threat), alpha))));
      tf.dispose([g.logits, g.loss, g.grad, current]);
      current = next;
      options.onProgress?.({ attack: 'pgd', done: step + 1, total: steps, active: y.length });
    }
    const logits = forward(model, current, counter);
    const loss = tf.tidy(() => lossFn(logits, current));
    await observe(current, logits, loss);
    if (best) {
      const chosen = best.choose();
      tf.dispose([logits, loss, current]);
      return { points: chosen.points, loss: chosen.loss, wrong: [...best.found] };
    }
    const pred = await predictions(logits);
    const lastLoss = await readAndDispose(loss);
    logits.dispose();
    return { points: current, loss: lastLoss, wrong: Array.from(y, (label, i) => pred[i] !== label) };
  } finally {
    best?.dispose();
    ball.dispose();
    yOneHot.dispose();
    yTensor.dispose();
  }
}

/**
 * Projected gradient ascent (Madry et al.) on CE, on the CW margin loss (`loss: 'margin'`: the CW
 * l_inf attack) or on a custom objective, for l_inf (signed steps) or l_2 (normalised steps).
 */
export async function pgd(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: PgdOptions,
): Promise<AttackResult> {
  const start = await startAttack(model, x, labels, options.ids);
  const { y, ids, counter, clean } = start;
  clean.logits.dispose();

  const first = await pgdRun(model, x, y, ids, clean.classes, options, 0, counter);
  let xAdv = first.points;
  const loss = first.loss;
  const wrong = first.wrong;
  for (let round = 1; round < (options.restarts ?? 1); round++) {
    const rows = Array.from(y.keys()).filter((i) => clean.correct[i] && !wrong[i]);
    if (rows.length === 0) break;
    const xs = takeRows(x, rows);
    const run = await pgdRun(model, xs, pick(y, rows), pick(ids, rows), clean.classes, options, round, counter);
    xs.dispose();
    xAdv = replaceRows(xAdv, rows, run.points, run.wrong);
    rows.forEach((r, j) => {
      if (!run.wrong[j]) return;
      loss[r] = run.loss[j];
      wrong[r] = true;
    });
    run.points.dispose();
  }
  return finishAttack(start, xAdv, options.threat, loss);
}

/**
 * PGD-fea's objective: ||f(x) - f(x + delta)||^2 per example, summed over every feature value (f's
 * output flattened per sample). The clean features are computed once per batch; dispose() frees them.
 */
export function featureDistance(features: (x: tf.Tensor4D) => tf.Tensor): {
  objective: AttackObjective;
  dispose(): void;
} {
  const cache: { x: tf.Tensor4D | null; f: tf.Tensor | null } = { x: null, f: null };
  const cleanFeatures = (xc: tf.Tensor4D): tf.Tensor => {
    if (cache.x !== xc || cache.f === null) {
      cache.f?.dispose();
      cache.x = xc;
      cache.f = tf.keep(tf.tidy(() => features(xc)));
    }
    return cache.f;
  };
  return {
    objective: (xAdv, xc) => {
      const diff = tf.sub(features(xAdv), cleanFeatures(xc));
      return tf.sum(tf.reshape(tf.square(diff), [xAdv.shape[0], -1]), 1);
    },
    dispose: () => cache.f?.dispose(),
  };
}

/**
 * PGD-fea (Table XI): maximise ||f(x) - f(x + delta)||^2 on features f (the backbone without the
 * head: in the evaluation, every token after the last block); success is still judged by the classifier.
 */
export async function pgdFeature(
  model: Classifier,
  features: (x: tf.Tensor4D) => tf.Tensor,
  x: tf.Tensor4D,
  labels: Labels,
  options: Omit<PgdOptions, 'loss'>,
): Promise<AttackResult> {
  const distance = featureDistance(features);
  try {
    return await pgd(model, x, labels, { ...options, loss: distance.objective });
  } finally {
    distance.dispose();
  }
}

/**
 * The PGD-MI objective (Table XI): CE(x + delta, y) + lambda * MI, with MI a batch-level estimate
 * (e.g. HSIC between x + delta and the encoder's features). Each example carries the full MI term,
 * so the gradient of the sum is N times that of mean CE + lambda * MI: the same ascent direction.
 */
export function crossEntropyPlusMi(
  lambda: number,
  mi: (xAdv: tf.Tensor4D, logits: tf.Tensor2D) => tf.Scalar,
): AttackObjective {
  return (xAdv, _x, _y, c) => tf.add(crossEntropyLoss(c.logits, c.yOneHot), tf.mul(mi(xAdv, c.logits), lambda));
}
