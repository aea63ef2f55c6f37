import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeIssues } from '../../shared/config-object';
import {
  FinetuneConfig,
  FinetuneRecord,
  type FinetuneOptimizer,
  headOutputs,
  isAdversarialMethod,
  resolveFinetuneConfig,
  type ResolvedFinetuneConfig,
} from '../../shared/finetune-config';
import { writeFileAtomic } from '../io/atomic-file';
import { ModelConfig } from '../../shared/model-config';
import type { DoneEvent, FailureCause, RunEventSink } from '../../shared/run-events';
import {
  CheckpointError,
  describeLatest,
  findResumeCheckpoint,
  readManifest,
  restoreCheckpoint,
  saveCheckpoint,
} from '../checkpoint';
import { BatchIterator, BatchIteratorState, datasetProblem, openDataset, type Dataset } from '../data';
import { datasetFraction } from '../data/subset';
import { openExtraData } from '../data/extra-data';
import { disposeParams, initClassifierParams, type ParamMap } from '../model';
import { RunCancelledError, RunFailedError } from '../pretrain/trainer';
import { Rng } from '../rng';
import { AdamW } from '../train/optimizer';
import { layerwiseLrScale, learningRateAtIteration, scaledLearningRate } from '../train/schedule';
import { nonFiniteStop, StepEvents } from '../train/step-events';
import { mixBatch, randAugmentBatch } from './augment';
import { RUN_CHECKPOINTS_DIR } from './checkpoint-path';
import { GeneralistTrainer } from './generalist';
import { heldOutAccuracy, type HeldOutResult } from './held-out';
import { FinetuneSourceError, initialClassifier } from './init';
import { classScores } from './outputs';
import { attackBudget, evalClassifier, finetuneStep, type TrainBatch } from './step';

/**
 * The fine-tuning loop, shaped as the pre-training one: data (pad-crop + flip, then RandAugment and
 * MixUp/CutMix when on), one step of the method per batch, AdamW with layer-wise lr decay and
 * warm-up + cosine per iteration, metrics per step, train and held-out accuracy per epoch,
 * checkpoints and exact resume, a NaN stop that names the last good checkpoint, cancel.
 */
export interface FinetuneRunOptions {
  outDir: string;
  /**
   * Continue from the newest good checkpoint in outDir (its stored config wins; `epochs` may be
   * raised). true: there must be one; 'if-any': start afresh when there is none.
   */
  resume?: boolean | 'if-any';
  /** With resume: continue from this checkpoint of outDir's instead of the newest one. */
  resumeFrom?: string;
  epochsOverride?: number;
  emit: RunEventSink;
  /** Stops the run at the next step boundary (the last checkpoint stays). */
  signal?: AbortSignal;
}

/** Beside checkpoints/: Generalist's learners and their optimiser, one checkpoint per main one, same name. */
export const GENERALIST_STATE_DIR = 'generalist-state';
export const FINETUNE_CONFIG_FILE = 'config.json';

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

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
  const { emit, outDir } = options;
  const checkpointsDir = path.join(outDir, RUN_CHECKPOINTS_DIR);
  const stateDir = path.join(outDir, GENERALIST_STATE_DIR);
  let lastCheckpoint: string | null = null;
  let step = 0;
  /** `config`: the config or its data cannot work (edit a copy); `run`: this attempt stopped (resume may help). */
  const fail = (message: string, cause: FailureCause = 'config'): never => {
    emit({ type: 'failed', message, step, lastCheckpoint, cause });
    throw new RunFailedError(message);
  };

  let stored: Awaited<ReturnType<typeof findResumeCheckpoint>> | null = null;
  if (options.resume) {
    stored = await findResumeCheckpoint(checkpointsDir, options.resumeFrom ?? null);
    if (stored.status === 'none' && options.resume === true) {
      fail(`Nothing to resume in ${outDir}: it holds no checkpoint (${checkpointsDir}).`, 'run');
    }
    if (stored.status === 'corrupt') fail(describeLatest(stored), 'run');
  }
  const resumed = stored?.status === 'ok' ? stored : null;
  if (resumed) lastCheckpoint = resumed.path;
  if (resumed && resumed.manifest.kind !== 'finetune') {
    fail(`${resumed.path} is a ${resumed.manifest.kind} checkpoint; --resume continues a fine-tuning run.`, 'run');
  }

  let config: ResolvedFinetuneConfig;
  let recordClasses: { numClasses: number; classNames: string[] } | null = null;
  if (resumed) {
    const parsed = FinetuneRecord.safeParse(resumed.manifest.runConfig);
    if (!parsed.success)
      return fail(`The checkpoint's fine-tuning config is invalid: ${describeIssues(parsed.error)}`, 'run');
    const { numClasses, classNames, ...rest } = parsed.data;
    config = rest;
    recordClasses = { numClasses, classNames };
  } else {
    const parsed = FinetuneConfig.safeParse(configInput);
    if (!parsed.success) return fail(`Invalid fine-tuning config: ${describeIssues(parsed.error)}`);
    config = resolveFinetuneConfig(parsed.data);
  }
  if (options.epochsOverride !== undefined) {
    const done = resumed?.manifest.epoch ?? 0;
    if (options.epochsOverride < done) {
      fail(`--epochs ${options.epochsOverride} is below the ${done} epochs the checkpoint has already done.`);
    }
    config = { ...config, epochs: options.epochsOverride };
  }

  let dataset: Dataset;
  let extra: Dataset | null = null;
  try {
    dataset = datasetFraction(await openDataset(config.dataset), config.trainFraction);
    if (config.extraData) extra = await openExtraData(config.extraData, dataset);
  } catch (error) {
    return fail(messageOf(error));
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
      heldOutWarnings.push(`No held-out accuracy: the test split cannot be opened (${messageOf(error)}).`);
    }
  }

  const rng = new Rng(config.seed);
  let params: ParamMap;
  let modelConfig: ModelConfig;
  let pretrained: Awaited<ReturnType<typeof initialClassifier>>['pretrained'] = null;
  try {
    if (resumed) {
      const parsedModel = ModelConfig.safeParse(resumed.manifest.modelConfig);
      if (!parsedModel.success)
        return fail(`The checkpoint's model config is invalid: ${describeIssues(parsedModel.error)}`, 'run');
      modelConfig = parsedModel.data;
      params = initClassifierParams(modelConfig, outputs, rng.fork(), { headInitStd: config.headInitStd });
    } else {
      const initial = await initialClassifier(
        config.source,
        dataset.imageSize,
        outputs,
        rng.fork(),
        config.headInitStd,
      );
      params = initial.params;
      modelConfig = initial.modelConfig;
      pretrained = initial.pretrained;
    }
  } catch (error) {
    if (error instanceof FinetuneSourceError || error instanceof CheckpointError || error instanceof RunFailedError) {
      return fail(messageOf(error));
    }
    return fail(`Cannot build the classifier: ${messageOf(error)}`);
  }

  const record: FinetuneRecord = { ...config, numClasses, classNames };
  const generalist = config.method === 'generalist' ? new GeneralistTrainer(params, modelConfig, config) : null;
  const optimizer = generalist ? null : createFinetuneOptimizer(params, config.optimizer, modelConfig.depth);
  const disposeModel = () => {
    optimizer?.dispose();
    generalist?.dispose();
    disposeParams(params);
  };

  let iteratorState: BatchIteratorState | undefined;
  let epoch = 0;
  try {
    if (resumed) {
      await restoreCheckpoint(resumed.path, params, optimizer, { kind: 'finetune' });
      if (generalist) {
        const statePath = path.join(stateDir, path.basename(resumed.path));
        const stateManifest = await readManifest(statePath).catch((error: unknown) => {
          throw new CheckpointError(statePath, `Generalist's learner state is unreadable (${messageOf(error)})`);
        });
        if (stateManifest.step !== resumed.manifest.step) {
          throw new CheckpointError(
            statePath,
            `holds step ${stateManifest.step}, the checkpoint ${resumed.path} step ${resumed.manifest.step}`,
          );
        }
        await restoreCheckpoint(statePath, generalist.state, generalist.optimizer, { kind: 'finetune' });
      }
      rng.restore(resumed.manifest.rng.state);
      iteratorState = BatchIteratorState.parse(resumed.manifest.rng.dataIterator);
      epoch = resumed.manifest.epoch;
      step = resumed.manifest.step;
    }
  } catch (error) {
    disposeModel();
    return fail(`Cannot resume from ${resumed?.path}: ${messageOf(error)}`, 'run');
  }

  let iterator: BatchIterator;
  try {
    iterator = new BatchIterator(dataset, {
      batchSize: config.batchSize,
      seed: config.seed ^ 0x9e3779b9,
      augmentation: config.augmentation,
      prefetch: 1,
      ...(iteratorState ? { state: iteratorState } : {}),
      ...(extra && config.extraData ? { extra: { dataset: extra, ratio: config.extraData.ratio } } : {}),
    });
  } catch (error) {
    disposeModel();
    return fail(messageOf(error));
  }

  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(
    path.join(outDir, FINETUNE_CONFIG_FILE),
    `${JSON.stringify({ ...record, model: modelConfig, pretrained: pretrained ? { path: pretrained.path, epoch: pretrained.epoch } : null }, null, 2)}\n`,
  );

  const stepsPerEpoch = iterator.batchesPerEpoch;
  const totalSteps = stepsPerEpoch * config.epochs;
  const lrConfig = {
    lr: scaledLearningRate(config.optimizer.baseLr, config.batchSize),
    minLr: config.optimizer.minLr,
    warmupEpochs: config.optimizer.warmupEpochs,
    epochs: config.epochs,
  };
  const budget = attackBudget(config);
  const adversarial = isAdversarialMethod(config.method);
  const runModel = (): ParamMap => generalist?.global ?? params;

  emit({
    type: 'started',
    runKind: 'finetune',
    backend: tf.getBackend() as 'tensorflow' | 'wasm' | 'cpu',
    outDir,
    step,
    epoch,
    totalSteps,
    stepsPerEpoch,
    resumedFrom: resumed?.path ?? null,
  });
  emit({
    type: 'log',
    level: 'info',
    message:
      `${config.method} fine-tuning ${origin(config, pretrained?.path ?? null, resumed?.path ?? null)} on ${dataset.description.summary} ` +
      `Model ${modelConfig.width}x${modelConfig.depth}, ${outputs} outputs, ${stepsPerEpoch} steps per epoch of ${config.batchSize} images` +
      (adversarial ? `, ${config.threat.norm} eps ${config.threat.eps}/255.` : '.'),
  });
  for (const message of heldOutWarnings) emit({ type: 'log', level: 'warn', message });

  const started = performance.now();
  let lastLr = 0;
  const summary: Record<string, number> = {};
  const stepEvents = new StepEvents(emit, { ...config, stepsPerEpoch });

  const measureHeldOut = async (): Promise<HeldOutResult | null> => {
    if (!heldOut) return null;
    const model = runModel();
    const scores = (x: tf.Tensor4D) =>
      tf.tidy(() => classScores(evalClassifier(model, modelConfig)(x), config.method, numClasses, config.dbat.merge));
    return heldOutAccuracy(scores, heldOut, {
      size: config.heldOut.size,
      batchSize: Math.min(config.batchSize, 128),
      threat: budget.threat,
      eps: budget.eps,
      alpha: config.heldOut.alpha !== undefined ? config.heldOut.alpha / 255 : budget.eps / 4,
      steps: config.heldOut.pgdSteps,
      seed: config.seed,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  };

  const saveAll = async (): Promise<void> => {
    const common = {
      kind: 'finetune' as const,
      epoch,
      step,
      runConfig: JSON.parse(JSON.stringify(record)),
      modelConfig: JSON.parse(JSON.stringify(modelConfig)),
      rng: { state: rng.state(), dataIterator: iterator.state() },
      metrics: summary,
    };
    if (generalist) {
      // The learners first: a crash between the two saves leaves the previous pair intact.
      await saveCheckpoint(stateDir, {
        ...common,
        params: generalist.state,
        optimizer: { adamw: generalist.optimizer, lr: lastLr },
      });
    }
    const saved = await saveCheckpoint(
      checkpointsDir,
      { ...common, params: runModel(), optimizer: optimizer ? { adamw: optimizer, lr: lastLr } : null },
      { keepLast: config.keepCheckpoints },
    );
    if (generalist) await pruneOrphanStates(stateDir, checkpointsDir, path.basename(saved.path));
    lastCheckpoint = saved.path;
    emit({ type: 'checkpoint', step, epoch, path: saved.path });
  };

  try {
    while (epoch < config.epochs) {
      const sums: Sums = { loss: 0, clean: 0, adv: 0, images: 0, steps: 0 };
      for (let b = 0; b < stepsPerEpoch; b++) {
        if (options.signal?.aborted) throw new RunCancelledError();
        const stepStart = performance.now();
        const batch = await nextTrainBatch(iterator, config, numClasses, dataset.imageSize, rng);
        const lr = learningRateAtIteration(lrConfig, epoch, b, stepsPerEpoch);
        let values: Record<string, number>;
        try {
          values = generalist
            ? await generalistStep(generalist, batch, {
                lr,
                epoch,
                batchIndex: b,
                stepsPerEpoch,
                updatesBefore: step,
                rng,
              })
            : await singleStep(
                { params, modelConfig, run: config, numClasses, epoch, rng },
                batch,
                optimizer ?? unreachable(),
                lr,
              );
        } finally {
          tf.dispose([batch.images, batch.targets, batch.labels]);
        }
        const n = batch.labelValues.length;
        step += 1;
        lastLr = lr;
        const stop = nonFiniteStop(values, step, epoch, lastCheckpoint);
        if (stop) fail(stop, 'run');
        const seconds = (performance.now() - stepStart) / 1000;
        sums.loss += values.loss ?? 0;
        sums.clean += (values.clean_acc ?? 0) * n;
        sums.adv += (values.adv_acc ?? 0) * n;
        sums.images += n;
        sums.steps += 1;
        stepEvents.after(step, epoch, b, seconds, values, lr);
      }
      epoch += 1;
      const epochValues: Record<string, number> = {
        train_loss: sums.loss / sums.steps,
        train_clean_acc: sums.clean / sums.images,
        ...(adversarial ? { train_adv_acc: sums.adv / sums.images } : {}),
      };
      if (epoch % config.heldOut.every === 0 || epoch === config.epochs) {
        const measured = await measureHeldOut();
        if (measured) {
          epochValues.heldout_natural_acc = measured.natural;
          epochValues.heldout_pgd_acc = measured.pgd;
        }
      }
      Object.assign(summary, epochValues);
      emit({ type: 'metrics', step, epoch, values: epochValues });
      emit({
        type: 'log',
        level: 'info',
        message: epochLine(epoch, config.epochs, epochValues, config.heldOut.pgdSteps),
      });
      if (epoch % config.checkpointEvery === 0 || epoch === config.epochs) await saveAll();
    }
    const done: DoneEvent = {
      type: 'done',
      step,
      epoch,
      checkpoint: lastCheckpoint ?? '',
      seconds: (performance.now() - started) / 1000,
      summary: { ...summary, images_per_s: stepEvents.imagesPerSecond },
    };
    emit(done);
    return done;
  } catch (error) {
    if (error instanceof RunFailedError) throw error;
    if (error instanceof RunCancelledError || options.signal?.aborted) {
      emit({
        type: 'log',
        level: 'warn',
        message: `Cancelled at step ${step}; the last checkpoint (${lastCheckpoint ?? 'none'}) is kept.`,
      });
      throw error instanceof RunCancelledError ? error : new RunCancelledError();
    }
    return fail(`Fine-tuning stopped at step ${step}: ${messageOf(error)}`, 'run');
  } finally {
    iterator.close();
    disposeModel();
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

async function singleStep(
  ctx: Parameters<typeof finetuneStep>[0],
  batch: TrainBatch,
  optimizer: AdamW,
  lr: number,
): Promise<Record<string, number>> {
  const result = await finetuneStep(ctx, batch);
  try {
    const { gradNorm } = optimizer.applyGradients(result.grads, lr);
    const partNames = Object.keys(result.parts);
    const [loss, clean, adv, norm, ...parts] = await Promise.all([
      result.loss.data(),
      result.cleanCorrect.data(),
      result.advCorrect ? result.advCorrect.data() : Promise.resolve(null),
      gradNorm ? gradNorm.data() : Promise.resolve(null),
      ...partNames.map((name) => result.parts[name]?.data() ?? Promise.resolve(new Float32Array([NaN]))),
    ]);
    gradNorm?.dispose();
    const n = batch.labelValues.length;
    return {
      loss: loss[0] ?? NaN,
      clean_acc: (clean[0] ?? NaN) / n,
      ...(adv ? { adv_acc: (adv[0] ?? NaN) / n } : {}),
      ...Object.fromEntries(partNames.map((name, i) => [name, parts[i]?.[0] ?? NaN])),
      ...(norm ? { grad_norm: norm[0] ?? NaN } : {}),
    };
  } finally {
    result.dispose();
  }
}

async function generalistStep(
  generalist: GeneralistTrainer,
  batch: TrainBatch,
  options: Parameters<GeneralistTrainer['step']>[1],
): Promise<Record<string, number>> {
  const result = generalist.step(batch, options);
  try {
    const [loss, naturalLoss, clean, adv] = await Promise.all([
      result.loss.data(),
      result.naturalLoss.data(),
      result.cleanCorrect.data(),
      result.advCorrect.data(),
    ]);
    const n = batch.labelValues.length;
    return {
      loss: loss[0] ?? NaN,
      natural_loss: naturalLoss[0] ?? NaN,
      clean_acc: (clean[0] ?? NaN) / n,
      adv_acc: (adv[0] ?? NaN) / n,
      robust_weight: result.robustWeight,
    };
  } finally {
    result.dispose();
  }
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
