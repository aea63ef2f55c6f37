import * as tf from '@tensorflow/tfjs-core';
import { attackBudget, effectiveLabelSmoothing, type ResolvedFinetuneConfig } from '@shared/finetune-config';
import type { ModelConfig } from '@shared/model-config';
import { apgdHighestLoss, type Classifier } from '../attacks';
import { exampleStreams } from '../attacks/streams';
import { classifierForward, type ParamMap } from '../model';
import type { Rng } from '../rng';
import { ascend, crossEntropyObjective, type AdversaryOptions } from './adversary';
import { correctCount, dbatLoss, klFromLogits, martLoss, smoothTargets, softCrossEntropy, tradesLoss } from './losses';
import { classScores } from './outputs';

/**
 * One fine-tuning step per method (spec section 5), as tensor work: the adversarial examples (made
 * with the classifier in evaluation mode: no drop path, weights as constants), the training loss
 * (train mode: drop path), and its gradients w.r.t. every parameter. The caller applies them.
 */

export interface TrainBatch {
  /** [N, H, W, 3] in [0, 1], after augmentation and mixing. */
  images: tf.Tensor4D;
  /** [N, C] class probabilities before label smoothing (one-hot unless MixUp/CutMix mixed them). */
  targets: tf.Tensor2D;
  /** [N] int32: each row's (dominant) class, for accuracy and hard-label attacks. */
  labels: tf.Tensor1D;
  labelValues: Int32Array;
  /** Dataset indices: each image's attack randomness comes from its own stream. */
  ids: Int32Array;
}

export interface StepContext {
  params: ParamMap;
  modelConfig: ModelConfig;
  run: ResolvedFinetuneConfig;
  numClasses: number;
  /** 0-based epoch being trained (DBAT's target choice depends on it). */
  epoch: number;
  rng: Rng;
}

export interface StepResult {
  grads: Map<string, tf.Tensor>;
  /** The objective the gradients are of. */
  loss: tf.Scalar;
  /** Its terms, where a method has several (e.g. TRADES' natural and robust parts). */
  parts: Record<string, tf.Scalar>;
  /** Rows of the batch classified right: clean images, and adversarial ones for adversarial methods. */
  cleanCorrect: tf.Scalar;
  advCorrect: tf.Scalar | null;
  dispose(): void;
}

// The attack settings in pixel units are defined in shared/ (the fine-tuning form shows them).
export { attackBudget };

/** The classifier as attacks see it: raw head outputs, evaluation mode, weights as constants. */
export function evalClassifier(params: ParamMap, modelConfig: ModelConfig): Classifier {
  return (x) => classifierForward(params, modelConfig, x, { trainParams: false }).logits;
}

/** Gradients keyed by parameter name (tf.variableGrads keys them by variable name). */
export function namedGradients(params: ParamMap, grads: tf.NamedTensorMap): Map<string, tf.Tensor> {
  const byVariable = new Map([...params].map(([name, variable]) => [variable.name, name]));
  const named = new Map<string, tf.Tensor>();
  for (const [variableName, grad] of Object.entries(grads)) {
    const name = byVariable.get(variableName);
    if (name === undefined) throw new Error(`internal: a gradient for unknown variable ${variableName}`);
    named.set(name, grad);
  }
  return named;
}

/**
 * Value and named gradients of `objective` w.r.t. `params`; tensors it hands to `keep` survive
 * (the caller disposes them).
 */
export function gradientsOf(
  params: ParamMap,
  objective: (keep: <T extends tf.Tensor>(t: T) => T) => tf.Scalar,
): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const { value, grads } = tf.variableGrads(() => objective((t) => tf.keep(t)), [...params.values()]);
  return { loss: value, grads: namedGradients(params, grads) };
}

/** Train-mode logits: drop path at the run's rate, drawn from the run's generator. */
export function trainLogits(
  params: ParamMap,
  modelConfig: ModelConfig,
  x: tf.Tensor4D,
  dropPath: number,
  rng: Rng,
): tf.Tensor2D {
  return classifierForward(params, modelConfig, x, dropPath > 0 ? { dropPath: { rate: dropPath, rng } } : {}).logits;
}

function rows(t: tf.Tensor2D, start: number, count: number): tf.Tensor2D {
  return tf.slice(t, [start, 0], [count, t.shape[1]]);
}

/**
 * Targeted-PGD targets for DBAT's adversary, one-hot over the 2C outputs: the least-likely output
 * (targeted-ll, when it is neither y nor y + C; it stays on the device), else a class drawn from the
 * example's own stream.
 */
function dbatTargets(ctx: StepContext, batch: TrainBatch, seed: number, leastLikely: tf.Tensor1D | null): tf.Tensor2D {
  const c = ctx.numClasses;
  const drawn = dbatDrawnClasses(ctx, batch, seed, leastLikely !== null);
  return tf.tidy(() => {
    let classes: tf.Tensor1D = tf.tensor1d(drawn, 'int32');
    if (leastLikely) {
      const usable = tf.logicalAnd(
        tf.notEqual(leastLikely, batch.labels),
        tf.notEqual(leastLikely, tf.add(batch.labels, c)),
      );
      classes = tf.where(usable, leastLikely, classes);
    }
    return tf.cast(tf.oneHot(classes, 2 * c), 'float32') as tf.Tensor2D;
  });
}

/** The drawn targets (per example, from its own stream; only the first draw of each stream is used). */
function dbatDrawnClasses(ctx: StepContext, batch: TrainBatch, seed: number, leastLikely: boolean): Int32Array {
  const c = ctx.numClasses;
  const realOnly = !leastLikely && ctx.epoch + 1 < ctx.run.dbat.realTargetEpochs * ctx.run.epochs;
  const streams = exampleStreams(seed, batch.ids, 'dbat-target', 0);
  return Int32Array.from(batch.labelValues, (y, i) => {
    const stream = streams[i];
    if (!stream) throw new Error('internal: no stream for a DBAT target');
    if (realOnly) {
      const k = stream.int(c - 1);
      return k >= y ? k + 1 : k;
    }
    // One of the 2C outputs except y and y + C.
    const k = stream.int(2 * c - 2);
    const skipped = k >= y ? k + 1 : k;
    return skipped >= y + c ? skipped + 1 : skipped;
  });
}

function oneHot(labels: Int32Array, classes: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32') as tf.Tensor2D);
}

/** The adversarial examples of a method for this batch (the caller disposes them). */
async function adversarialExamples(
  ctx: StepContext,
  batch: TrainBatch,
  seed: number,
  cleanEval: tf.Tensor2D | null,
): Promise<tf.Tensor4D> {
  const { run, params, modelConfig } = ctx;
  const { threat, eps, alpha } = attackBudget(run);
  const model = evalClassifier(params, modelConfig);
  const base: Omit<AdversaryOptions, 'steps' | 'alpha' | 'start'> = { threat, eps, seed, ids: batch.ids };
  switch (run.method) {
    case 'pgd-at':
      return ascend(model, batch.images, crossEntropyObjective(batch.targets), {
        ...base,
        alpha,
        steps: run.attack.steps,
        start: run.attack.randomStart ? 'uniform' : 'none',
      });
    case 'fast-at':
      return ascend(model, batch.images, crossEntropyObjective(batch.targets), {
        ...base,
        alpha: run.fastAt.alphaFactor * eps,
        steps: 1,
        start: 'uniform',
      });
    case 'apgd-at':
      return apgdHighestLoss(model, batch.images, batch.labelValues, {
        threat,
        eps,
        iterations: run.apgdAt.steps,
        rho: run.apgdAt.rho,
      });
    case 'trades': {
      if (!cleanEval) throw new Error('internal: TRADES needs the clean logits');
      return ascend(model, batch.images, (z) => klFromLogits(cleanEval, z), {
        ...base,
        alpha,
        steps: run.attack.steps,
        start: 'normal',
      });
    }
    case 'mart':
      return ascend(model, batch.images, crossEntropyObjective(batch.targets), {
        ...base,
        alpha,
        steps: run.attack.steps,
        start: 'normal',
      });
    case 'dbat': {
      const options = { ...base, alpha, steps: run.attack.steps, start: 'normal' as const };
      if (run.dbat.attack === 'untargeted') {
        const merged: Classifier = (x) => classScores(model(x), 'dbat', ctx.numClasses, run.dbat.merge);
        return ascend(merged, batch.images, crossEntropyObjective(batch.targets), options);
      }
      let leastLikely: tf.Tensor1D | null = null;
      if (run.dbat.attack === 'targeted-ll') {
        if (!cleanEval) throw new Error('internal: targeted-ll needs the clean logits');
        leastLikely = tf.argMin<tf.Tensor1D>(cleanEval, 1);
      }
      const target = dbatTargets(ctx, batch, seed, leastLikely);
      leastLikely?.dispose();
      try {
        const toward = crossEntropyObjective(target);
        return ascend(model, batch.images, (z) => tf.neg(toward(z)), options);
      } finally {
        target.dispose();
      }
    }
    case 'natural':
    case 'generalist':
      throw new Error(`internal: ${run.method} has no single-model adversary`);
  }
}

/** One step of any method but generalist (see generalist.ts). The caller owns the result. */
export async function finetuneStep(ctx: StepContext, batch: TrainBatch): Promise<StepResult> {
  const { run, params, modelConfig, rng, numClasses } = ctx;
  const n = batch.labelValues.length;
  const smoothing = effectiveLabelSmoothing(run);
  const forward = (x: tf.Tensor4D) => trainLogits(params, modelConfig, x, run.dropPath, rng);
  const scores = (z: tf.Tensor2D) => classScores(z, run.method, numClasses, run.dbat.merge);
  const kept: { clean?: tf.Scalar; adv?: tf.Scalar; parts: Record<string, tf.Scalar> } = { parts: {} };

  if (run.method === 'natural') {
    const targets = smoothTargets(batch.targets, smoothing);
    const { loss, grads } = gradientsOf(params, (keep) => {
      const z = forward(batch.images);
      kept.clean = keep(correctCount(z, batch.labels));
      return tf.mean(softCrossEntropy(z, targets)) as tf.Scalar;
    });
    targets.dispose();
    return result(loss, grads, kept);
  }
  if (run.method === 'generalist') throw new Error('internal: generalist steps are GeneralistTrainer.step');

  const seed = rng.nextUint32();
  const needsCleanEval = run.method === 'trades' || (run.method === 'dbat' && run.dbat.attack === 'targeted-ll');
  const cleanEval = needsCleanEval ? tf.tidy(() => evalClassifier(params, modelConfig)(batch.images)) : null;
  let xAdv: tf.Tensor4D;
  try {
    xAdv = await adversarialExamples(ctx, batch, seed, cleanEval);
  } finally {
    cleanEval?.dispose();
  }

  try {
    if (run.method === 'pgd-at' || run.method === 'fast-at' || run.method === 'apgd-at') {
      // The training pass sees only adversarial images: clean accuracy costs one forward pass.
      kept.clean = tf.tidy(() => correctCount(evalClassifier(params, modelConfig)(batch.images), batch.labels));
      const targets = smoothTargets(batch.targets, smoothing);
      const { loss, grads } = gradientsOf(params, (keep) => {
        const z = forward(xAdv);
        kept.adv = keep(correctCount(z, batch.labels));
        return tf.mean(softCrossEntropy(z, targets)) as tf.Scalar;
      });
      targets.dispose();
      return result(loss, grads, kept);
    }

    // TRADES, MART and DBAT: one forward pass over [clean; adversarial].
    const both = tf.concat([batch.images, xAdv], 0) as tf.Tensor4D;
    const targets = smoothTargets(batch.targets, smoothing);
    const hard = oneHot(batch.labelValues, numClasses);
    try {
      const { loss, grads } = gradientsOf(params, (keep) => {
        const z = forward(both);
        const clean = rows(z, 0, n);
        const adv = rows(z, n, n);
        kept.clean = keep(correctCount(scores(clean), batch.labels));
        kept.adv = keep(correctCount(scores(adv), batch.labels));
        if (run.method === 'trades') {
          const t = tradesLoss(clean, adv, targets, run.trades.beta);
          kept.parts = { natural_loss: keep(t.natural), robust_loss: keep(t.robust) };
          return t.loss;
        }
        if (run.method === 'mart') {
          const m = martLoss(clean, adv, targets, hard, run.mart.beta);
          kept.parts = { boosted_ce: keep(m.boosted), robust_loss: keep(m.robust) };
          return m.loss;
        }
        return dbatLoss(z, batch.targets, smoothing);
      });
      return result(loss, grads, kept);
    } finally {
      tf.dispose([both, targets, hard]);
    }
  } finally {
    xAdv.dispose();
  }
}

function result(
  loss: tf.Scalar,
  grads: Map<string, tf.Tensor>,
  kept: { clean?: tf.Scalar; adv?: tf.Scalar; parts: Record<string, tf.Scalar> },
): StepResult {
  const cleanCorrect = kept.clean ?? tf.scalar(Number.NaN);
  const advCorrect = kept.adv ?? null;
  return {
    grads,
    loss,
    parts: kept.parts,
    cleanCorrect,
    advCorrect,
    dispose: () => {
      tf.dispose([
        loss,
        cleanCorrect,
        ...(advCorrect ? [advCorrect] : []),
        ...Object.values(kept.parts),
        ...grads.values(),
      ]);
    },
  };
}
