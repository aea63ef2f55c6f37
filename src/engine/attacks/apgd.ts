import * as tf from '@tensorflow/tfjs-core';
import { ThreatBall, steepestDirection } from './geometry';
import { logitLoss, minClassesFor, type LogitLossName } from './losses';
import { QueryCounter, finishAttack, lossAndGradient, oneHot, startAttack } from './oracle';
import type { AttackStart } from './oracle';
import { apgdStart } from './start';
import { exampleStreams } from './streams';
import { pick, replaceRows, takeRows } from './tracking';
import {
  throwIfAborted,
  type AttackResult,
  type Classifier,
  type CommonAttackOptions,
  type Labels,
  type ThreatModel,
} from './types';

/**
 * Auto-PGD (Croce & Hein, ICML 2020), following AutoAttack's reference implementation
 * (autopgd_base.py): step 2 eps, momentum 0.75, checkpoints at 0.22 N then intervals shrinking by
 * 0.03 N down to 0.06 N; at a checkpoint the step is halved and the search restarts from the best
 * point when the loss rose in at most rho of the steps since the last checkpoint, or when the step
 * was not halved last time and the best loss has not improved.
 */

export interface ApgdOptions extends CommonAttackOptions {
  threat: ThreatModel;
  eps: number;
  /** Default 100. */
  iterations?: number;
  /** Default 1; later restarts attack only examples still robust. */
  restarts?: number;
  /** Default 0.75. */
  rho?: number;
  /** 'ce' (APGD-CE, default), 'dlr' (APGD-DLR) or 'margin' (the CW loss). */
  loss?: 'ce' | 'dlr' | 'margin';
}

export interface ApgdTargetedOptions extends CommonAttackOptions {
  threat: ThreatModel;
  eps: number;
  iterations?: number;
  /** Target classes: the 2nd..(targets+1)-th highest clean logits, capped at classes - 1. Default 9. */
  targets?: number;
  /** Restarts per target class. Default 1. */
  restarts?: number;
  rho?: number;
}

export interface ApgdTargetedResult extends AttackResult {
  /** Targets actually run (the requested number capped at classes - 1). */
  targetsUsed: number;
}

export interface ApgdCheckpoint {
  /** 0-based iteration after which the step size is checked. */
  at: number;
  /** Iterations since the previous checkpoint (the window of the oscillation count). */
  interval: number;
}

/**
 * The checkpoint schedule of the reference: first after max(floor(0.22 N), 1) iterations, then
 * intervals shrinking by max(floor(0.03 N), 1) down to max(floor(0.06 N), 1). For N = 100 the
 * checks fall after iterations 22, 41, 57, 70, 80, 87, 93 and 99.
 */
export function apgdCheckpoints(iterations: number): ApgdCheckpoint[] {
  const min = Math.max(Math.floor(0.06 * iterations), 1);
  const decrease = Math.max(Math.floor(0.03 * iterations), 1);
  const points: ApgdCheckpoint[] = [];
  let interval = Math.max(Math.floor(0.22 * iterations), 1);
  let at = interval - 1;
  while (at < iterations) {
    points.push({ at, interval });
    interval = Math.max(interval - decrease, min);
    at += interval;
  }
  return points;
}

interface RunSettings {
  threat: ThreatModel;
  eps: number;
  iterations: number;
  rho: number;
  signal?: AbortSignal;
  report?: (done: number) => void;
}

interface RunResult {
  /** Highest-loss point per example. */
  xBest: tf.Tensor4D;
  /** Latest misclassified point per example (the start where none was found). */
  xBestAdv: tf.Tensor4D;
  /** [N] bool: still correctly classified at every iterate. */
  robust: tf.Tensor1D;
  /** [N] the highest loss per example. */
  lossBest: tf.Tensor1D;
}

/** `next`, with `old` (the value it replaces) disposed. */
function replace<T extends tf.Tensor>(old: T, next: T): T {
  old.dispose();
  return next;
}

/** A per-example [N] bool as a mask over images [N, 1, 1, 1]. */
const rowsOf = (flags: tf.Tensor1D): tf.Tensor4D => tf.reshape(flags, [flags.shape[0], 1, 1, 1]);

/**
 * One APGD run from `start` (a perturbation) on a batch; mirrors attack_single_run for l_inf and l_2.
 * Its per-example bookkeeping (step sizes, best points and losses, the checkpoint decisions) stays in
 * tensors, as the reference keeps it, so no iteration reads a value back from the backend.
 */
async function apgdRun(
  model: Classifier,
  x: tf.Tensor4D,
  y: Int32Array,
  loss: (logits: tf.Tensor2D) => tf.Tensor1D,
  start: tf.Tensor4D,
  s: RunSettings,
  counter: QueryCounter,
): Promise<RunResult> {
  const n = y.length;
  const nIter = s.iterations;
  const checkpoints = new Map(apgdCheckpoints(nIter).map((c) => [c.at, c.interval]));
  const ball = new ThreatBall(x, s.eps, s.threat);
  const labels = tf.tensor1d(y, 'int32');
  const misclassified = (logits: tf.Tensor2D) => tf.notEqual(tf.argMax(logits, 1), labels) as tf.Tensor1D;

  let xAdv = tf.tidy(() => tf.clipByValue(tf.add(x, start), 0, 1) as tf.Tensor4D);
  let xBest = tf.clone(xAdv);
  let xBestAdv = tf.clone(xAdv);
  const first = lossAndGradient(model, xAdv, loss, counter);
  let grad = first.grad;
  let gradBest = tf.clone(grad);
  let robust = tf.tidy(() => tf.logicalNot(misclassified(first.logits))) as tf.Tensor1D;
  let lossBest = first.loss;
  first.logits.dispose();

  let stepSize = tf.fill([n, 1, 1, 1], 2 * s.eps) as tf.Tensor4D;
  let xAdvOld = tf.clone(xAdv);
  // Losses of every iteration; AutoAttack compares the first step with row -1 of this zero-initialised
  // buffer (Python indexing), so the comparison wraps around the same way here (absent rows are zeros).
  const lossSteps: (tf.Tensor1D | undefined)[] = new Array<tf.Tensor1D | undefined>(nIter);
  let lossBestLastCheck = tf.clone(lossBest);
  let reducedLastCheck = tf.fill([n], 1, 'bool') as tf.Tensor1D;

  try {
    for (let i = 0; i < nIter; i++) {
      throwIfAborted(s.signal);
      const a = i > 0 ? 0.75 : 1.0;
      const next = tf.tidy(() => {
        const momentum = tf.sub(xAdv, xAdvOld);
        const z = ball.project(tf.add(xAdv, tf.mul(stepSize, steepestDirection(grad, s.threat))));
        return ball.project(tf.add(tf.add(xAdv, tf.mul(tf.sub(z, xAdv), a)), tf.mul(momentum, 1 - a)));
      });
      xAdvOld.dispose();
      xAdvOld = xAdv;
      xAdv = next;

      const g = lossAndGradient(model, xAdv, loss, counter);
      grad.dispose();
      grad = g.grad;
      lossSteps[i] = g.loss;
      const now = g.loss;
      const kept = tf.tidy(() => {
        const wrong = misclassified(g.logits);
        const improved = tf.greater(now, lossBest) as tf.Tensor1D;
        return {
          robust: tf.logicalAnd(robust, tf.logicalNot(wrong)) as tf.Tensor1D,
          xBestAdv: tf.where(rowsOf(wrong), xAdv, xBestAdv),
          xBest: tf.where(rowsOf(improved), xAdv, xBest),
          gradBest: tf.where(rowsOf(improved), grad, gradBest),
          lossBest: tf.where(improved, now, lossBest),
        };
      });
      g.logits.dispose();
      robust = replace(robust, kept.robust);
      xBestAdv = replace(xBestAdv, kept.xBestAdv);
      xBest = replace(xBest, kept.xBest);
      gradBest = replace(gradBest, kept.gradBest);
      lossBest = replace(lossBest, kept.lossBest);

      const k = checkpoints.get(i);
      if (k !== undefined) {
        const reduce = tf.tidy(() => {
          const lossAt = (step: number) => lossSteps[step] ?? tf.zeros([n]);
          let increases = tf.zeros([n], 'int32');
          for (let c = 0; c < k; c++) {
            const rose = tf.greater(lossAt(i - c), lossAt((i - c - 1 + nIter) % nIter));
            increases = tf.add(increases, tf.cast(rose, 'int32'));
          }
          // The count is an integer: at most k rho is at most floor(k rho), compared exactly.
          const oscillation = tf.lessEqual(increases, Math.floor(k * s.rho));
          const noImprovement = tf.logicalAnd(
            tf.logicalNot(reducedLastCheck),
            tf.greaterEqual(lossBestLastCheck, lossBest),
          );
          return tf.logicalOr(oscillation, noImprovement) as tf.Tensor1D;
        });
        reducedLastCheck = replace(reducedLastCheck, reduce);
        lossBestLastCheck = replace(lossBestLastCheck, tf.clone(lossBest));
        const restart = tf.tidy(() => {
          const rows = rowsOf(reduce);
          return {
            stepSize: tf.where(rows, tf.div<tf.Tensor4D>(stepSize, 2), stepSize),
            xAdv: tf.where(rows, xBest, xAdv),
            grad: tf.where(rows, gradBest, grad),
          };
        });
        stepSize = replace(stepSize, restart.stepSize);
        xAdv = replace(xAdv, restart.xAdv);
        grad = replace(grad, restart.grad);
      }
      s.report?.(i + 1);
    }
    return { xBest, xBestAdv, robust, lossBest };
  } catch (error) {
    tf.dispose([xBest, xBestAdv, robust, lossBest]);
    throw error;
  } finally {
    tf.dispose([xAdv, xAdvOld, grad, gradBest, stepSize, labels, lossBestLastCheck, reducedLastCheck]);
    tf.dispose(lossSteps.filter((t): t is tf.Tensor1D => t !== undefined));
    ball.dispose();
  }
}

/** A run's per-example outcome, read once after its iterations (evaluation merges runs on the CPU). */
interface RunOutcome {
  robust: boolean[];
  lossBest: Float32Array;
}

async function readOutcome(run: RunResult): Promise<RunOutcome> {
  const [robust, lossBest] = await Promise.all([run.robust.data(), run.lossBest.data()]);
  tf.dispose([run.robust, run.lossBest]);
  return { robust: Array.from(robust, Boolean), lossBest: Float32Array.from(lossBest) };
}

interface Merged {
  xAdv: tf.Tensor4D;
  robust: boolean[];
  /** Best loss of the kept robust point, per example. */
  keptLoss: Float32Array;
}

/** Fold one run on `rows` into the overall result: broken examples take x_best_adv, robust ones the higher-loss x_best. */
function mergeRun(merged: Merged, rows: number[], run: RunResult, outcome: RunOutcome): void {
  const broken = outcome.robust.map((r) => !r);
  const betterLoss = rows.map(
    (r, j) => outcome.robust[j] === true && (outcome.lossBest[j] ?? -Infinity) > (merged.keptLoss[r] ?? -Infinity),
  );
  merged.xAdv = replaceRows(merged.xAdv, rows, run.xBestAdv, broken);
  merged.xAdv = replaceRows(merged.xAdv, rows, run.xBest, betterLoss);
  rows.forEach((r, j) => {
    if (broken[j]) merged.robust[r] = false;
    if (betterLoss[j]) merged.keptLoss[r] = outcome.lossBest[j] ?? Number.NaN;
  });
  tf.dispose([run.xBest, run.xBestAdv]);
}

function checkClasses(loss: LogitLossName, classes: number): void {
  const needed = minClassesFor(loss);
  if (classes < needed) throw new Error(`the ${loss} loss needs at least ${needed} classes; the model has ${classes}`);
}

/** What one round attacks the still-robust `rows` with (its loss on their logits) and what it made to do so. */
interface RoundLoss {
  loss: (logits: tf.Tensor2D) => tf.Tensor1D;
  /** Disposed after the round. */
  tensors: tf.Tensor[];
  /** Sees the round's run before it is merged (APGD-T: which target produced an example's point). */
  beforeMerge?: (rows: number[], outcome: RunOutcome, kept: Merged) => void;
}

interface Rounds {
  /** The stream of the rounds' starting points, and the attack's name in progress reports. */
  name: string;
  count: number;
  iterations: number;
  lossFor: (round: number, rows: number[], yOneHot: tf.Tensor2D) => RoundLoss;
}

/**
 * AutoAttack's restart loop, shared by APGD and APGD-T: each round runs APGD from a fresh seeded
 * start on the examples still robust, and its result is folded into the kept points (mergeRun).
 * Examples misclassified clean are never attacked (their point stays x).
 */
async function attackInRounds(
  start: AttackStart,
  options: CommonAttackOptions & { threat: ThreatModel; eps: number; rho?: number },
  rounds: Rounds,
): Promise<tf.Tensor4D> {
  const { model, x, y, ids, counter, clean } = start;
  const merged: Merged = {
    xAdv: tf.clone(x),
    robust: [...clean.correct],
    keptLoss: new Float32Array(y.length).fill(-Infinity),
  };
  const { iterations } = rounds;
  for (let round = 0; round < rounds.count; round++) {
    const rows = Array.from(y.keys()).filter((i) => merged.robust[i]);
    if (rows.length === 0) break;
    const xs = takeRows(x, rows);
    const ys = pick(y, rows);
    const yOneHot = oneHot(ys, clean.classes);
    const roundLoss = rounds.lossFor(round, rows, yOneHot);
    const startPoint = apgdStart(
      exampleStreams(options.seed ?? 0, pick(ids, rows), rounds.name, round),
      xs.shape,
      options.threat,
      options.eps,
    );
    try {
      const run = await apgdRun(
        model,
        xs,
        ys,
        roundLoss.loss,
        startPoint,
        {
          threat: options.threat,
          eps: options.eps,
          iterations,
          rho: options.rho ?? 0.75,
          signal: options.signal,
          report: (done) =>
            options.onProgress?.({
              attack: rounds.name,
              done: round * iterations + done,
              total: rounds.count * iterations,
              active: rows.length,
            }),
        },
        counter,
      );
      const outcome = await readOutcome(run);
      roundLoss.beforeMerge?.(rows, outcome, merged);
      mergeRun(merged, rows, run, outcome);
    } finally {
      tf.dispose([xs, yOneHot, startPoint, ...roundLoss.tensors]);
    }
  }
  return merged.xAdv;
}

/**
 * APGD with the CE, DLR or margin loss (APGD-CE / APGD-DLR). Examples misclassified clean are not
 * attacked (their xAdv is x); each restart attacks only examples still robust.
 */
export async function apgd(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: ApgdOptions,
): Promise<AttackResult> {
  const lossName = options.loss ?? 'ce';
  const start = await startAttack(model, x, labels, options.ids);
  const { y, clean } = start;
  clean.logits.dispose();
  checkClasses(lossName, clean.classes);

  const xAdv = await attackInRounds(start, options, {
    name: `apgd-${lossName}`,
    count: options.restarts ?? 1,
    iterations: options.iterations ?? 100,
    lossFor: (_round, _rows, yOneHot) => ({
      loss: (z) => logitLoss(lossName, z, { y: yOneHot }),
      tensors: [],
    }),
  });
  const yAll = oneHot(y, clean.classes);
  try {
    return await finishAttack(start, xAdv, options.threat, (_xa, z) => logitLoss(lossName, z, { y: yAll }));
  } finally {
    yAll.dispose();
  }
}

/**
 * APGD-T: APGD on the targeted DLR loss against each of the `targets` classes with the highest clean
 * logits after the top one, in order, each only on examples still robust.
 */
export async function apgdTargeted(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: ApgdTargetedOptions,
): Promise<ApgdTargetedResult> {
  const restarts = options.restarts ?? 1;
  const start = await startAttack(model, x, labels, options.ids);
  const { y, clean } = start;
  checkClasses('dlr-targeted', clean.classes);
  const targetsUsed = Math.min(options.targets ?? 9, clean.classes - 1);
  const ranking = tf.topk(clean.logits, targetsUsed + 1);
  const ranked = (await ranking.indices.data()) as Int32Array;
  tf.dispose([ranking.values, ranking.indices, clean.logits]);
  const targetOf = (row: number, rank: number) => ranked[row * (targetsUsed + 1) + rank - 1] ?? 0;
  // The target whose run produced each example's xAdv, for reporting the loss there.
  const lastTarget = Int32Array.from(y.keys(), (i) => targetOf(i, 2));

  // Round (rank - 2) * restarts + restart attacks the target of that rank (2: the runner-up class).
  const xAdv = await attackInRounds(start, options, {
    name: 'apgd-t',
    count: targetsUsed * restarts,
    iterations: options.iterations ?? 100,
    lossFor: (round, rows, yOneHot) => {
      const targets = Int32Array.from(rows, (r) => targetOf(r, 2 + Math.floor(round / restarts)));
      const targetOneHot = oneHot(targets, clean.classes);
      return {
        loss: (z) => logitLoss('dlr-targeted', z, { y: yOneHot, target: targetOneHot }),
        tensors: [targetOneHot],
        beforeMerge: (_rows, run, kept) =>
          rows.forEach((r, j) => {
            if (!run.robust[j] || (run.lossBest[j] ?? -Infinity) > (kept.keptLoss[r] ?? -Infinity))
              lastTarget[r] = targets[j] ?? 0;
          }),
      };
    },
  });
  const yAll = oneHot(y, clean.classes);
  const targetAll = oneHot(lastTarget, clean.classes);
  try {
    const result = await finishAttack(start, xAdv, options.threat, (_xa, z) =>
      logitLoss('dlr-targeted', z, { y: yAll, target: targetAll }),
    );
    return { ...result, targetsUsed };
  } finally {
    tf.dispose([yAll, targetAll]);
  }
}

export interface ApgdTrainingOptions {
  threat: ThreatModel;
  eps: number;
  iterations: number;
  /** Default 0.75. */
  rho?: number;
  signal?: AbortSignal;
}

/**
 * APGD-CE as APGD-AT trains on it (Singh et al., "Revisiting Adversarial Training for ImageNet",
 * their apgd_train): every example is attacked, misclassified ones too, from x itself (no random
 * start), and the point returned is each example's highest-loss iterate x_best, not the first
 * misclassified one. The caller owns the result.
 */
export async function apgdHighestLoss(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Int32Array,
  options: ApgdTrainingOptions,
): Promise<tf.Tensor4D> {
  if (labels.length !== x.shape[0]) {
    throw new Error(`APGD-AT: ${labels.length} labels for ${x.shape[0]} images; give one label per image`);
  }
  const yIds = tf.tensor1d(labels, 'int32');
  const start = tf.zerosLike(x);
  try {
    const run = await apgdRun(
      model,
      x,
      labels,
      (z) => logitLoss('ce', z, { y: tf.cast(tf.oneHot(yIds, z.shape[1]), 'float32') as tf.Tensor2D }),
      start,
      {
        threat: options.threat,
        eps: options.eps,
        iterations: options.iterations,
        rho: options.rho ?? 0.75,
        signal: options.signal,
      },
      new QueryCounter(),
    );
    tf.dispose([run.xBestAdv, run.robust, run.lossBest]);
    return run.xBest;
  } finally {
    tf.dispose([yIds, start]);
  }
}
