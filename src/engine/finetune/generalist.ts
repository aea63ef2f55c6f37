import * as tf from '@tensorflow/tfjs-core';
import type { GeneralistSettings, ResolvedFinetuneConfig } from '@shared/finetune-config';
import type { ModelConfig } from '@shared/model-config';
import { disposeParams, type ParamMap } from '../model';
import type { Rng } from '../rng';
import { AdamW, isNoWeightDecay } from '../train/optimizer';
import { layerwiseLrScale } from '../train/schedule';
import { ascend, crossEntropyObjective } from './adversary';
import { correctCount, smoothTargets, softCrossEntropy } from './losses';
import { attackBudget, evalClassifier, gradientsOf, trainLogits, type TrainBatch } from './step';

/**
 * Generalist (Wang & Wang, CVPR 2023) as its official code trains it (PKU-ML/Generalist main.py):
 * a natural base learner (CE on clean images) and a robust one (CE on PGD examples made on itself)
 * take a step each on every batch, with their own AdamW state; each has an EMA; the global model
 * is an EMA of robustWeight * EMA(robust) + (1 - robustWeight) * EMA(natural); in sync epochs both
 * learners are reset to the global model after every step. The global model is the run's model:
 * checkpointed as the classifier, measured, evaluated.
 *
 * All the learners' state lives in one map with prefixed names (natural.*, robust.*, natural_ema.*,
 * robust_ema.*) and one AdamW over it: AdamW keeps moments per parameter and the two learners'
 * gradients are applied in separate calls (so clipping, when on, is per learner), which is two
 * independent optimisers; the EMAs never receive gradients (their moments stay zero). This map is
 * what the run's generalist-state checkpoints hold, next to the global model's.
 */

export const GENERALIST_PREFIXES = ['natural.', 'robust.', 'natural_ema.', 'robust_ema.'] as const;

function stripPrefix(name: string): string {
  for (const prefix of GENERALIST_PREFIXES) if (name.startsWith(prefix)) return name.slice(prefix.length);
  return name;
}

function copyOf(params: ParamMap, trainable: boolean): ParamMap {
  const copy: ParamMap = new Map();
  for (const [name, variable] of params) {
    const value = tf.clone(variable);
    copy.set(name, tf.variable(value, trainable));
    value.dispose();
  }
  return copy;
}

/** The EMA decay at update s (0-based), as the code's EMA: min(decay, (s + 1) / (s + 10)). */
export function emaDecayAt(decay: number, s: number): number {
  return Math.min(decay, (s + 1) / (s + 10));
}

/**
 * Weight of the robust learner in the global mix at fractional epoch t of `epochs`: the start value
 * until mixRampStart * epochs, then linear to the end value at `epochs` (np.interp of the code).
 */
export function robustWeightAt(settings: GeneralistSettings, t: number, epochs: number): number {
  const rampStart = settings.mixRampStart * epochs;
  if (t <= rampStart || epochs <= rampStart) return settings.robustWeightStart;
  const progress = Math.min(1, (t - rampStart) / (epochs - rampStart));
  return settings.robustWeightStart + (settings.robustWeightEnd - settings.robustWeightStart) * progress;
}

/** Whether epoch k (1-based) is a sync epoch: k >= syncStart * epochs and k % syncEvery == 0. */
export function isSyncEpoch(settings: GeneralistSettings, epoch1: number, epochs: number): boolean {
  return epoch1 >= settings.syncStart * epochs && epoch1 % settings.syncEvery === 0;
}

export interface GeneralistStepResult {
  /** The robust learner's CE (the run's `loss`) and the natural learner's. */
  loss: tf.Scalar;
  naturalLoss: tf.Scalar;
  /** The natural learner on clean images, the robust learner on its adversarial examples. */
  cleanCorrect: tf.Scalar;
  advCorrect: tf.Scalar;
  robustWeight: number;
  synced: boolean;
  gradNorms: tf.Scalar[];
  dispose(): void;
}

export class GeneralistTrainer {
  readonly natural: ParamMap;
  readonly robust: ParamMap;
  readonly naturalEma: ParamMap;
  readonly robustEma: ParamMap;
  /** Every learner variable under its prefixed name: what the state checkpoint holds. */
  readonly state: ParamMap = new Map();
  readonly optimizer: AdamW;

  /** `global` is the run's model (its variables are updated in place); the learners start as copies of it. */
  constructor(
    readonly global: ParamMap,
    readonly modelConfig: ModelConfig,
    readonly run: ResolvedFinetuneConfig,
  ) {
    this.natural = copyOf(global, true);
    this.robust = copyOf(global, true);
    this.naturalEma = copyOf(global, false);
    this.robustEma = copyOf(global, false);
    const groups: [string, ParamMap][] = [
      ['natural.', this.natural],
      ['robust.', this.robust],
      ['natural_ema.', this.naturalEma],
      ['robust_ema.', this.robustEma],
    ];
    for (const [prefix, params] of groups) for (const [name, v] of params) this.state.set(`${prefix}${name}`, v);
    const scale = layerwiseLrScale(modelConfig.depth, run.optimizer.layerDecay);
    this.optimizer = new AdamW(this.state, {
      betas: [run.optimizer.beta1, run.optimizer.beta2],
      weightDecay: run.optimizer.weightDecay,
      maxGradNorm: run.optimizer.clipGrad,
      lrScale: (name) => scale(stripPrefix(name)),
      noWeightDecay: (name, shape) => isNoWeightDecay(stripPrefix(name), shape),
    });
  }

  /**
   * One Generalist iteration on a batch at learning rate `lr`: both learners' steps, the EMA and
   * global updates (`updatesBefore` = iterations done before this one), and a sync in sync epochs.
   */
  step(
    batch: TrainBatch,
    options: { lr: number; epoch: number; batchIndex: number; stepsPerEpoch: number; updatesBefore: number; rng: Rng },
  ): GeneralistStepResult {
    const g = this.gradients(batch, options.rng);
    const { robustWeight, synced, gradNorms } = this.apply(g.robust.grads, g.natural.grads, options);
    tf.dispose([...g.robust.grads.values(), ...g.natural.grads.values()]);
    const { cleanCorrect, advCorrect } = g;
    return {
      loss: g.robust.loss,
      naturalLoss: g.natural.loss,
      cleanCorrect,
      advCorrect,
      robustWeight,
      synced,
      gradNorms,
      dispose: () => tf.dispose([g.robust.loss, g.natural.loss, cleanCorrect, advCorrect, ...gradNorms]),
    };
  }

  /**
   * Both learners' losses and gradients on a batch (the robust learner's on PGD examples made on
   * itself, first; then the natural learner's): the first half of step(). The caller disposes them.
   */
  gradients(
    batch: TrainBatch,
    rng: Rng,
  ): {
    robust: { loss: tf.Scalar; grads: Map<string, tf.Tensor> };
    natural: { loss: tf.Scalar; grads: Map<string, tf.Tensor> };
    cleanCorrect: tf.Scalar;
    advCorrect: tf.Scalar;
  } {
    const { run, modelConfig } = this;
    const { threat, eps, alpha } = attackBudget(run);
    const seed = rng.nextUint32();
    const xAdv = ascend(evalClassifier(this.robust, modelConfig), batch.images, crossEntropyObjective(batch.targets), {
      threat,
      eps,
      alpha,
      steps: run.attack.steps,
      start: run.attack.randomStart ? 'uniform' : 'none',
      seed,
      ids: batch.ids,
    });
    const targets = smoothTargets(batch.targets, run.labelSmoothing);
    const kept: { adv?: tf.Scalar; clean?: tf.Scalar } = {};
    const robust = gradientsOf(this.robust, (keep) => {
      const z = trainLogits(this.robust, modelConfig, xAdv, run.dropPath, rng);
      kept.adv = keep(correctCount(z, batch.labels));
      return tf.mean(softCrossEntropy(z, targets)) as tf.Scalar;
    });
    xAdv.dispose();
    const natural = gradientsOf(this.natural, (keep) => {
      const z = trainLogits(this.natural, modelConfig, batch.images, run.dropPath, rng);
      kept.clean = keep(correctCount(z, batch.labels));
      return tf.mean(softCrossEntropy(z, targets)) as tf.Scalar;
    });
    targets.dispose();
    return {
      robust,
      natural,
      cleanCorrect: kept.clean ?? tf.scalar(Number.NaN),
      advCorrect: kept.adv ?? tf.scalar(Number.NaN),
    };
  }

  /**
   * The second half of step(): each learner's AdamW update from its gradients (robust first), the EMA
   * and global updates, and a sync in sync epochs. The gradients stay the caller's.
   */
  apply(
    robustGrads: Map<string, tf.Tensor>,
    naturalGrads: Map<string, tf.Tensor>,
    options: { lr: number; epoch: number; batchIndex: number; stepsPerEpoch: number; updatesBefore: number },
  ): { robustWeight: number; synced: boolean; gradNorms: tf.Scalar[] } {
    const { run } = this;
    const gradNorms: tf.Scalar[] = [];
    for (const [prefix, grads] of [
      ['robust.', robustGrads],
      ['natural.', naturalGrads],
    ] as const) {
      const prefixed = new Map([...grads].map(([name, grad]) => [`${prefix}${name}`, grad]));
      const { gradNorm } = this.optimizer.applyGradients(prefixed, options.lr);
      if (gradNorm) gradNorms.push(gradNorm);
    }

    const t = options.epoch + (options.batchIndex + 1) / options.stepsPerEpoch;
    const robustWeight = robustWeightAt(run.generalist, t, run.epochs);
    this.updateAverages(emaDecayAt(run.generalist.emaDecay, options.updatesBefore), robustWeight);
    const synced = isSyncEpoch(run.generalist, options.epoch + 1, run.epochs);
    if (synced) this.syncLearners();
    return { robustWeight, synced, gradNorms };
  }

  /** EMA(learner) <- d EMA + (1 - d) learner; global <- d global + (1 - d) (w EMA(robust) + (1 - w) EMA(natural)). */
  private updateAverages(d: number, robustWeight: number): void {
    tf.tidy(() => {
      for (const [name, g] of this.global) {
        const robustEma = this.get(this.robustEma, name);
        const naturalEma = this.get(this.naturalEma, name);
        const r = tf.add(tf.mul(robustEma, d), tf.mul(this.get(this.robust, name), 1 - d));
        const n = tf.add(tf.mul(naturalEma, d), tf.mul(this.get(this.natural, name), 1 - d));
        robustEma.assign(r);
        naturalEma.assign(n);
        const mix = tf.add(tf.mul(r, robustWeight), tf.mul(n, 1 - robustWeight));
        g.assign(tf.add(tf.mul(g, d), tf.mul(mix, 1 - d)));
      }
    });
  }

  /** Both base learners take the global model's weights (their optimiser state is kept, as in the code). */
  private syncLearners(): void {
    for (const [name, g] of this.global) {
      this.get(this.natural, name).assign(g);
      this.get(this.robust, name).assign(g);
    }
  }

  private get(params: ParamMap, name: string): tf.Variable {
    const v = params.get(name);
    if (!v) throw new Error(`internal: Generalist learner lacks "${name}"`);
    return v;
  }

  /** Frees the learners and the optimiser (not the global model, which the run owns). */
  dispose(): void {
    this.optimizer.dispose();
    for (const params of [this.natural, this.robust, this.naturalEma, this.robustEma]) disposeParams(params);
    this.state.clear();
  }
}
