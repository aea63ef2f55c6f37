import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeIssues } from '@shared/config-object';
import {
  FinetuneConfig,
  FinetuneRecord,
  type FinetuneOptimizer,
  headOutputs,
  isAdversarialMethod,
  resolveFinetuneConfig,
  type ResolvedFinetuneConfig,
} from '@shared/finetune-config';
import { ModelConfig } from '@shared/model-config';
import type { DoneEvent, RunEvent } from '@shared/run-events';
import { CheckpointError, readManifest, restoreCheckpoint, saveCheckpoint, type GoodCheckpoint } from '../checkpoint';
import { BatchIterator, datasetProblem, openDataset, type Dataset } from '../data';
import { errorMessage } from '@shared/unknown-value';
import { datasetFraction } from '../data/subset';
import { disposeParams, initClassifierParams, type ParamMap } from '../model';
import { Rng } from '../rng';
import { AdamW } from '../train/optimizer';
import {
  RunFailedError,
  runTraining,
  type CheckpointCommon,
  type Position,
  type SetupContext,
  type StepInput,
  type StepMetrics,
  type StepOutput,
  type Trainer,
  type TrainingRunOptions,
  type TrainingSession,
} from '../train/run-lifecycle';
import { layerwiseLrScale } from '../train/schedule';
import { mixBatch, randAugmentBatch } from './augment';
import { RUN_CHECKPOINTS_DIR } from './checkpoint-path';
import { GeneralistTrainer } from './generalist';
import { heldOutAccuracy, type HeldOutResult } from './held-out';
import { FinetuneSourceError, initialClassifier } from './init';
import { classScores } from './outputs';
import { attackBudget, evalClassifier, finetuneStep, type TrainBatch } from './step';

/**
 * Fine-tuning (the lifecycle is train/run-lifecycle.ts): data (pad-crop + flip, then RandAugment and
 * MixUp/CutMix when on), one step of the method per batch, AdamW with layer-wise lr decay, train and
 * held-out accuracy per epoch, checkpoints (with Generalist's learners beside them).
 */
export type FinetuneRunOptions = TrainingRunOptions;

/** Beside checkpoints/: Generalist's learners and their optimiser, one checkpoint per main one, same name. */
export const GENERALIST_STATE_DIR = 'generalist-state';
export { CONFIG_FILE as FINETUNE_CONFIG_FILE } from '../train/run-lifecycle';

interface Sums {
  loss: number;
  clean: number;
  adv: number;
  images: number;
  steps: number;
}

/**
 * AdamW for fine-tuning: layer-wise lr decay, and timm's no_weight_decay groups (biases, norms,
 * cls token undecayed).
 */
export function createFinetuneOptimizer(params: ParamMap, settings: FinetuneOptimizer, depth: number): AdamW {
  return new AdamW(params, {
    betas: [settings.beta1, settings.beta2],
    weightDecay: settings.weightDecay,
    maxGradNorm: settings.clipGrad,
    lrScale: layerwiseLrScale(depth, settings.layerDecay),
  });
}

export async function runFinetuning(configInput: unknown, options: FinetuneRunOptions): Promise<DoneEvent> {
  return runTraining(finetuner, configInput, options);
}

const finetuner: Trainer<ResolvedFinetuneConfig> = {
  runKind: 'finetune',
  title: 'Fine-tuning',
  readConfig(input, resumed, fail) {
    if (resumed) {
      const parsed = FinetuneRecord.safeParse(resumed.manifest.runConfig);
      if (!parsed.success) {
        return fail(`The checkpoint's fine-tuning config is invalid: ${describeIssues(parsed.error)}`, 'run');
      }
      const { numClasses: _n, classNames: _c, ...rest } = parsed.data;
      return rest;
    }
    const parsed = FinetuneConfig.safeParse(input);
    if (!parsed.success) return fail(`Invalid fine-tuning config: ${describeIssues(parsed.error)}`);
    return resolveFinetuneConfig(parsed.data);
  },
  setup: setupFinetuning,
};

async function setupFinetuning(config: ResolvedFinetuneConfig, context: SetupContext): Promise<FinetuneSession> {
  const { resumed, fail } = context;
  const recordClasses = resumed ? FinetuneRecord.parse(resumed.manifest.runConfig) : null;
  let dataset: Dataset;
  try {
    dataset = datasetFraction(await openDataset(config.dataset), config.trainFraction);
  } catch (error) {
    return fail(errorMessage(error));
  }
  const problem = datasetProblem('finetune', dataset);
  if (problem !== null) return fail(problem);
  if (recordClasses && recordClasses.numClasses !== dataset.numClasses) {
    fail(
      `The checkpoint's classifier has ${recordClasses.numClasses} classes but the dataset now has ${dataset.numClasses}.`,
    );
  }
  const numClasses = dataset.numClasses;
  const classNames = recordClasses?.classNames ?? [...dataset.classNames];
  const outputs = headOutputs(config.method, numClasses);

  let heldOut: Dataset | null = null;
  const heldOutWarnings: string[] = [];
  if (config.heldOut.size > 0) {
    try {
      heldOut = await openDataset({ ...config.dataset, split: 'test' });
    } catch (error) {
      heldOutWarnings.push(`No held-out accuracy: the test split cannot be opened (${errorMessage(error)}).`);
    }
  }

  let params: ParamMap;
  let modelConfig: ModelConfig;
  let pretrained: Awaited<ReturnType<typeof initialClassifier>>['pretrained'] = null;
  try {
    if (resumed) {
      const parsedModel = ModelConfig.safeParse(resumed.manifest.modelConfig);
      if (!parsedModel.success)
        return fail(`The checkpoint's model config is invalid: ${describeIssues(parsedModel.error)}`, 'run');
      modelConfig = parsedModel.data;
      params = initClassifierParams(modelConfig, outputs, context.rng.fork(), { headInitStd: config.headInitStd });
    } else {
      const initial = await initialClassifier(
        config.source,
        dataset.imageSize,
        outputs,
        context.rng.fork(),
        config.headInitStd,
      );
      params = initial.params;
      modelConfig = initial.modelConfig;
      pretrained = initial.pretrained;
    }
  } catch (error) {
    if (error instanceof FinetuneSourceError || error instanceof CheckpointError || error instanceof RunFailedError) {
      return fail(errorMessage(error));
    }
    return fail(`Cannot build the classifier: ${errorMessage(error)}`);
  }
  const record: FinetuneRecord = { ...config, numClasses, classNames };
  return new FinetuneSession(
    {
      config,
      record,
      modelConfig,
      numClasses,
      pretrained: pretrained ? { path: pretrained.path, epoch: pretrained.epoch } : null,
      heldOut,
      heldOutWarnings,
    },
    dataset,
    params,
    context,
  );
}

interface FinetunePlan {
  config: ResolvedFinetuneConfig;
  record: FinetuneRecord;
  modelConfig: ModelConfig;
  numClasses: number;
  /** The pre-training checkpoint the encoder came from (null from scratch or when resumed). */
  pretrained: { path: string; epoch: number } | null;
  heldOut: Dataset | null;
  heldOutWarnings: string[];
}

/** One fine-tuning run's classifier (or Generalist's learners), its optimiser and its epoch tallies. */
class FinetuneSession implements TrainingSession {
  readonly configFile: unknown;
  readonly summary: Record<string, number> = {};
  private sums: Sums = { loss: 0, clean: 0, adv: 0, images: 0, steps: 0 };
  private readonly generalist: GeneralistTrainer | null;
  private readonly optimizer: AdamW | null;
  private resumedFrom: string | null = null;

  constructor(
    private readonly plan: FinetunePlan,
    readonly dataset: Dataset,
    private readonly params: ParamMap,
    private readonly context: SetupContext,
  ) {
    const { config, record, modelConfig } = plan;
    this.generalist = config.method === 'generalist' ? new GeneralistTrainer(params, modelConfig, config) : null;
    this.optimizer = this.generalist ? null : createFinetuneOptimizer(params, config.optimizer, modelConfig.depth);
    this.configFile = {
      ...record,
      model: modelConfig,
      pretrained: plan.pretrained,
    };
  }

  private get model(): ParamMap {
    return this.generalist?.global ?? this.params;
  }

  async restore(resumed: GoodCheckpoint): Promise<void> {
    this.resumedFrom = resumed.path;
    await restoreCheckpoint(resumed.path, this.params, this.optimizer, { kind: 'finetune' });
    if (!this.generalist) return;
    const statePath = path.join(this.context.outDir, GENERALIST_STATE_DIR, path.basename(resumed.path));
    const stateManifest = await readManifest(statePath).catch((error: unknown) => {
      throw new CheckpointError(statePath, `Generalist's learner state is unreadable (${errorMessage(error)})`);
    });
    if (stateManifest.step !== resumed.manifest.step) {
      throw new CheckpointError(
        statePath,
        `holds step ${stateManifest.step}, the checkpoint ${resumed.path} step ${resumed.manifest.step}`,
      );
    }
    await restoreCheckpoint(statePath, this.generalist.state, this.generalist.optimizer, { kind: 'finetune' });
  }

  intro(stepsPerEpoch: number): Array<Extract<RunEvent, { type: 'log' }>> {
    const { config, modelConfig, numClasses } = this.plan;
    const outputs = headOutputs(config.method, numClasses);
    const from = origin(config, this.plan.pretrained?.path ?? null, this.resumedFrom);
    return [
      {
        type: 'log',
        level: 'info',
        message:
          `${config.method} fine-tuning ${from} on ${this.dataset.description.summary} ` +
          `Model ${modelConfig.width}x${modelConfig.depth}, ${outputs} outputs, ${stepsPerEpoch} steps per epoch of ${config.batchSize} images` +
          (isAdversarialMethod(config.method) ? `, ${config.threat.norm} eps ${config.threat.eps}/255.` : '.'),
      },
      ...this.plan.heldOutWarnings.map((message) => ({ type: 'log' as const, level: 'warn' as const, message })),
    ];
  }

  async step({ epoch, step, batch: b, lr, iterator }: StepInput): Promise<StepOutput> {
    const { config, modelConfig, numClasses } = this.plan;
    const { rng } = this.context;
    const batch = await nextTrainBatch(iterator, config, numClasses, this.dataset.imageSize, rng);
    let method: MethodStep;
    try {
      method = this.generalist
        ? generalistStep(this.generalist, batch, {
            lr,
            epoch,
            batchIndex: b,
            stepsPerEpoch: iterator.batchesPerEpoch,
            updatesBefore: step,
            rng,
          })
        : await singleStep(
            { params: this.params, modelConfig, run: config, numClasses, epoch, rng },
            batch,
            this.optimizer ?? unreachable(),
            lr,
          );
    } finally {
      tf.dispose([batch.images, batch.targets, batch.labels]);
    }
    const n = batch.labelValues.length;
    const settle = (read: Record<string, number>): StepMetrics => {
      const values = method.values(read);
      this.sums.loss += values.loss ?? 0;
      this.sums.clean += (values.clean_acc ?? 0) * n;
      this.sums.adv += (values.adv_acc ?? 0) * n;
      this.sums.images += n;
      this.sums.steps += 1;
      return { values };
    };
    return { metrics: method.metrics, settle };
  }

  async endEpoch(at: Position): Promise<void> {
    const { config } = this.plan;
    const { sums } = this;
    const epochValues: Record<string, number> = {
      train_loss: sums.loss / sums.steps,
      train_clean_acc: sums.clean / sums.images,
      ...(isAdversarialMethod(config.method) ? { train_adv_acc: sums.adv / sums.images } : {}),
    };
    this.sums = { loss: 0, clean: 0, adv: 0, images: 0, steps: 0 };
    if (at.epoch % config.heldOut.every === 0 || at.epoch === config.epochs) {
      const measured = await this.measureHeldOut();
      if (measured) {
        epochValues.heldout_natural_acc = measured.natural;
        epochValues.heldout_pgd_acc = measured.pgd;
      }
    }
    Object.assign(this.summary, epochValues);
    const { emit } = this.context;
    emit({ type: 'metrics', ...at, values: epochValues });
    emit({
      type: 'log',
      level: 'info',
      message: epochLine(at.epoch, config.epochs, epochValues, config.heldOut.pgdSteps),
    });
  }

  async save({ lr, ...rest }: CheckpointCommon): Promise<string> {
    const { outDir } = this.context;
    const checkpointsDir = path.join(outDir, RUN_CHECKPOINTS_DIR);
    const stateDir = path.join(outDir, GENERALIST_STATE_DIR);
    const common = {
      kind: 'finetune' as const,
      ...rest,
      runConfig: JSON.parse(JSON.stringify(this.plan.record)),
      modelConfig: JSON.parse(JSON.stringify(this.plan.modelConfig)),
    };
    if (this.generalist) {
      // The learners first: a crash between the two saves leaves the previous pair intact.
      await saveCheckpoint(stateDir, {
        ...common,
        params: this.generalist.state,
        optimizer: { adamw: this.generalist.optimizer, lr },
      });
    }
    const saved = await saveCheckpoint(
      checkpointsDir,
      { ...common, params: this.model, optimizer: this.optimizer ? { adamw: this.optimizer, lr } : null },
      { keepLast: this.plan.config.keepCheckpoints },
    );
    if (this.generalist) await pruneOrphanStates(stateDir, checkpointsDir, path.basename(saved.path));
    return saved.path;
  }

  dispose(): void {
    this.optimizer?.dispose();
    this.generalist?.dispose();
    disposeParams(this.params);
  }

  private async measureHeldOut(): Promise<HeldOutResult | null> {
    const { config, modelConfig, numClasses, heldOut } = this.plan;
    if (!heldOut) return null;
    const model = this.model;
    const budget = attackBudget(config);
    const scores = (x: tf.Tensor4D) =>
      tf.tidy(() => classScores(evalClassifier(model, modelConfig)(x), config.method, numClasses, config.dbat.merge));
    const { signal } = this.context;
    return heldOutAccuracy(scores, heldOut, {
      size: config.heldOut.size,
      batchSize: Math.min(config.batchSize, 128),
      threat: budget.threat,
      eps: budget.eps,
      alpha: config.heldOut.alpha !== undefined ? config.heldOut.alpha / 255 : budget.eps / 4,
      steps: config.heldOut.pgdSteps,
      seed: config.seed,
      ...(signal ? { signal } : {}),
    });
  }
}

/** Where the run's weights come from, for its first log line. */
function origin(config: ResolvedFinetuneConfig, pretrained: string | null, resumedFrom: string | null): string {
  if (resumedFrom) return `resumed from ${resumedFrom}`;
  if (pretrained) return `from ${pretrained}`;
  return config.source.kind === 'scratch' ? 'from scratch (End2End)' : `from ${config.source.checkpoint}`;
}

function unreachable(): never {
  throw new Error('internal: no optimiser');
}

function percent(value: number | undefined): string {
  return value === undefined ? '-' : `${(100 * value).toFixed(1)}%`;
}

function epochLine(epoch: number, epochs: number, v: Record<string, number>, pgdSteps: number): string {
  const parts = [
    `epoch ${epoch}/${epochs}: train loss ${(v.train_loss ?? NaN).toFixed(4)}`,
    `clean ${percent(v.train_clean_acc)}`,
  ];
  if (v.train_adv_acc !== undefined) parts.push(`adversarial ${percent(v.train_adv_acc)}`);
  if (v.heldout_natural_acc !== undefined) {
    parts.push(`held-out natural ${percent(v.heldout_natural_acc)}, PGD-${pgdSteps} ${percent(v.heldout_pgd_acc)}`);
  }
  return parts.join(', ');
}

/** The next batch: the loader's arrays (pad-crop + flip), RandAugment, MixUp/CutMix, then tensors. */
async function nextTrainBatch(
  iterator: BatchIterator,
  config: ResolvedFinetuneConfig,
  numClasses: number,
  size: number,
  rng: Rng,
): Promise<TrainBatch> {
  const arrays = await iterator.nextArrays();
  const n = arrays.labels.length;
  if (config.randAugment) randAugmentBatch(arrays.images, n, size, config.randAugment, rng);
  const mixed = mixBatch(arrays.images, arrays.labels, size, numClasses, config.mixup, rng);
  return {
    images: tf.tensor4d(mixed.images, [n, size, size, 3], 'float32'),
    targets: tf.tensor2d(mixed.targets, [n, numClasses], 'float32'),
    labels: tf.tensor1d(mixed.labels, 'int32'),
    labelValues: mixed.labels,
    ids: arrays.indices,
  };
}

/** A method's step as it leaves it: its metric scalars on the device, and its metrics from their values. */
interface MethodStep {
  metrics: Record<string, tf.Tensor>;
  values(read: Record<string, number>): Record<string, number>;
}

async function singleStep(
  ctx: Parameters<typeof finetuneStep>[0],
  batch: TrainBatch,
  optimizer: AdamW,
  lr: number,
): Promise<MethodStep> {
  const result = await finetuneStep(ctx, batch);
  let gradNorm: tf.Scalar | null;
  try {
    gradNorm = optimizer.applyGradients(result.grads, lr).gradNorm;
  } catch (error) {
    result.dispose();
    throw error;
  }
  tf.dispose([...result.grads.values()]);
  const n = batch.labelValues.length;
  const partNames = Object.keys(result.parts);
  const hasAdv = result.advCorrect !== null;
  const hasNorm = gradNorm !== null;
  return {
    metrics: {
      loss: result.loss,
      clean_correct: result.cleanCorrect,
      ...(result.advCorrect ? { adv_correct: result.advCorrect } : {}),
      ...result.parts,
      ...(gradNorm ? { grad_norm: gradNorm } : {}),
    },
    values: (read) => ({
      loss: read.loss ?? NaN,
      clean_acc: (read.clean_correct ?? NaN) / n,
      ...(hasAdv ? { adv_acc: (read.adv_correct ?? NaN) / n } : {}),
      ...Object.fromEntries(partNames.map((name) => [name, read[name] ?? NaN])),
      ...(hasNorm ? { grad_norm: read.grad_norm ?? NaN } : {}),
    }),
  };
}

function generalistStep(
  generalist: GeneralistTrainer,
  batch: TrainBatch,
  options: Parameters<GeneralistTrainer['step']>[1],
): MethodStep {
  const result = generalist.step(batch, options);
  tf.dispose(result.gradNorms);
  const n = batch.labelValues.length;
  return {
    metrics: {
      loss: result.loss,
      natural_loss: result.naturalLoss,
      clean_correct: result.cleanCorrect,
      adv_correct: result.advCorrect,
    },
    values: (read) => ({
      loss: read.loss ?? NaN,
      natural_loss: read.natural_loss ?? NaN,
      clean_acc: (read.clean_correct ?? NaN) / n,
      adv_acc: (read.adv_correct ?? NaN) / n,
      robust_weight: result.robustWeight,
    }),
  };
}

/** Remove Generalist state checkpoints whose main checkpoint is gone (kept: `current`). */
async function pruneOrphanStates(stateDir: string, checkpointsDir: string, current: string): Promise<void> {
  const mains = new Set(
    (await readdir(checkpointsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name),
  );
  for (const entry of await readdir(stateDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name === current || mains.has(entry.name)) continue;
    await rm(path.join(stateDir, entry.name), { recursive: true, force: true });
  }
}
