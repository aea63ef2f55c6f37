import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { RUN_CHECKPOINTS_DIR } from '@shared/checkpoint';
import type { AugmentationConfig, ExtraData } from '@shared/dataset-config';
import type { RunEngine } from '@shared/engine-choice';
import type { DoneEvent, FailureCause, RunEvent, RunEventSink } from '@shared/run-events';
import { describeLatest, findResumeCheckpoint, type GoodCheckpoint } from '../checkpoint';
import { BatchIterator, BatchIteratorState, type Dataset } from '../data';
import { openExtraData } from '../data/extra-data';
import { writeFileAtomic } from '../io/atomic-file';
import { runPrecision, setWebgpuKernelSettings, useWebgpuPrecision } from '../webgpu/variants';
import { errorMessage } from '@shared/unknown-value';
import { Rng, type RngState } from '../rng';
import { PendingMetrics } from './pending-metrics';
import { learningRateAtIteration, scaledLearningRate } from './schedule';
import { nonFiniteStop, StepEvents } from './step-events';

/**
 * The one lifecycle of a training run (pre-training and fine-tuning), in the spirit of MAE's
 * main_pretrain.py: resume lookup, config, setup, restore, the data iterator, config.json, the epoch
 * loop with per-iteration learning rate, step events and NaN stop, checkpoints, then done, cancel or
 * fail. A trainer (engine_pretrain.py's part) supplies its config, its setup (dataset, model,
 * optimiser), one step, the end of an epoch and what a checkpoint holds.
 *
 * A step leaves its metrics on the device; the lifecycle reads them every `metricsEvery` steps, in
 * one transfer, and always before a preview, the end of an epoch (so before held-out passes and
 * checkpoints), a cancel or a failure report, then emits each step's events in order. A NaN found
 * late stops the run at the step it happened at, before anything after it is written.
 *
 * Outcomes: `done` (returned and emitted); a cancel (the signal aborted, whatever error the abort
 * caused) logs and throws RunCancelledError; anything else emits `failed` (naming the last good
 * checkpoint, which is kept) and throws RunFailedError.
 */
export interface TrainingRunOptions {
  outDir: string;
  /**
   * Continue from the newest good checkpoint in outDir (its stored config wins; `epochs` may be
   * raised). true: there must be one; 'if-any': start afresh when there is none (the job runner's
   * mode: the same call starts a run and resumes it).
   */
  resume?: boolean | 'if-any';
  /** With resume: continue from this checkpoint of outDir's instead of the newest one. */
  resumeFrom?: string;
  epochsOverride?: number;
  emit: RunEventSink;
  /** Stops the run at the next step boundary (no checkpoint is written; the last one stays). */
  signal?: AbortSignal;
}

export class RunFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFailedError';
  }
}

export class RunCancelledError extends Error {
  constructor() {
    super('The run was cancelled.');
    this.name = 'RunCancelledError';
  }
}

/** What the lifecycle reads of a trainer's config. */
export interface TrainingPlan {
  seed: number;
  epochs: number;
  batchSize: number;
  logEvery: number;
  /** Read the steps' metrics every this many steps (absent: defaultMetricsEvery of the backend). */
  metricsEvery?: number | undefined;
  checkpointEvery: number;
  augmentation: AugmentationConfig;
  optimizer: { baseLr: number; minLr: number; warmupEpochs: number };
  /** Generated images mixed into every batch at a ratio (Table XVIII). */
  extraData?: ExtraData | undefined;
  /** The engine; a tfjs run's precision applies to the webgpu kernels. */
  engine?: RunEngine | undefined;
}

/** `config`: the config or its data cannot work (edit a copy); `run`: this attempt stopped (resume may help). */
export type Fail = (message: string, cause?: FailureCause) => never;

export interface SetupContext {
  outDir: string;
  emit: RunEventSink;
  signal: AbortSignal | undefined;
  /** The run's Rng: setup forks what it initialises from it; the lifecycle then restores it when resuming. */
  rng: Rng;
  resumed: GoodCheckpoint | null;
  fail: Fail;
}

/** Where a step or an epoch end happens: `epoch` 0-based while training, `step` the steps done so far. */
export interface Position {
  epoch: number;
  step: number;
}

export interface StepInput extends Position {
  /** The batch's index in its epoch. */
  batch: number;
  lr: number;
  iterator: BatchIterator;
}

export interface StepOutput {
  /** The step's metric scalars, left on the device; the lifecycle reads them later and disposes them. */
  metrics: Record<string, tf.Tensor>;
  /** The step's metrics from what was read of `metrics`; called once, in step order (epoch tallies go here). */
  settle(read: Record<string, number>): StepMetrics;
}

export interface StepMetrics {
  /** Checked for NaN/Inf (a non-finite one stops the run) and emitted as the step's metrics. */
  values: Record<string, number>;
  /** Emitted after `values`, not checked. */
  extra?: Record<string, number>;
}

/** Read metrics every step where a read costs nothing; on webgpu a read waits for the GPU to drain. */
export function defaultMetricsEvery(backend: string): number {
  return backend === 'webgpu' ? 8 : 1;
}

/** A step whose metrics are still on the device. */
interface PendingStep {
  step: number;
  epoch: number;
  batch: number;
  lr: number;
  seconds: number;
  settle: StepOutput['settle'];
}

/** What a checkpoint holds whatever the trainer: the lifecycle's part of the manifest. */
export interface CheckpointCommon extends Position {
  rng: { state: RngState; dataIterator: BatchIteratorState };
  metrics: Record<string, number>;
  lr: number;
}

/** A trainer's live run: built by its setup, disposed by the lifecycle. */
export interface TrainingSession {
  dataset: Dataset;
  /** Written as config.json once the run is known to start. */
  configFile: unknown;
  /** Loads the resumed checkpoint's weights and optimiser state (a failure is reported as one to resume). */
  restore(resumed: GoodCheckpoint): Promise<void>;
  /** The log lines after `started`. */
  intro(stepsPerEpoch: number): Array<Extract<RunEvent, { type: 'log' }>>;
  /** Before the first step of this attempt (after `started`). */
  begin?(at: Position): Promise<void>;
  step(input: StepInput): Promise<StepOutput>;
  /** Whether a preview is due after this step (`at.step` counts it); the lifecycle reads the pending metrics first. */
  previewDue?(at: Position): boolean;
  writePreview?(at: Position): Promise<void>;
  /** After the last step of an epoch (`at.epoch` counts it): the epoch's metrics. */
  endEpoch(at: Position): Promise<void>;
  /** The latest epoch's values: a checkpoint's metrics and the `done` summary. */
  summary: Record<string, number>;
  /** Saves a checkpoint; returns its path. */
  save(common: CheckpointCommon): Promise<string>;
  dispose(): void;
}

export interface Trainer<C extends TrainingPlan> {
  runKind: 'pretrain' | 'finetune';
  /** Starts the message of a failure in the loop: "Pre-training stopped at step 3: ...". */
  title: string;
  /** The run's config: the input, or the one stored in the checkpoint it resumes. */
  readConfig(input: unknown, resumed: GoodCheckpoint | null, fail: Fail): C;
  /** Dataset, model and optimiser; it disposes what it built before it fails. */
  setup(config: C, context: SetupContext): Promise<TrainingSession>;
}

export const CONFIG_FILE = 'config.json';

export async function runTraining<C extends TrainingPlan>(
  trainer: Trainer<C>,
  configInput: unknown,
  options: TrainingRunOptions,
): Promise<DoneEvent> {
  try {
    return await trainOnce(trainer, configInput, options);
  } finally {
    // A run's precision is the run's own: the next run, evaluation or bench in this process starts from fp32.
    setWebgpuKernelSettings({ precision: 'fp32' });
  }
}

async function trainOnce<C extends TrainingPlan>(
  trainer: Trainer<C>,
  configInput: unknown,
  options: TrainingRunOptions,
): Promise<DoneEvent> {
  const { emit, outDir, signal } = options;
  const checkpointsDir = path.join(outDir, RUN_CHECKPOINTS_DIR);
  let lastCheckpoint: string | null = null;
  let step = 0;
  let epoch = 0;
  const fail: Fail = (message, cause = 'config') => {
    emit({ type: 'failed', message, step, lastCheckpoint, cause });
    throw new RunFailedError(message);
  };

  let resumed: GoodCheckpoint | null = null;
  if (options.resume) {
    const stored = await findResumeCheckpoint(checkpointsDir, options.resumeFrom ?? null);
    if (stored.status === 'none' && options.resume === true) {
      fail(`Nothing to resume in ${outDir}: it holds no checkpoint (${checkpointsDir}).`, 'run');
    }
    if (stored.status === 'corrupt') fail(describeLatest(stored), 'run');
    if (stored.status === 'ok') {
      resumed = { path: stored.path, manifest: stored.manifest };
      lastCheckpoint = stored.path;
    }
  }
  if (resumed && resumed.manifest.kind !== trainer.runKind) {
    fail(
      `${resumed.path} is a ${resumed.manifest.kind} checkpoint; --resume continues a ${trainer.runKind} run.`,
      'run',
    );
  }

  let config = trainer.readConfig(configInput, resumed, fail);
  if (options.epochsOverride !== undefined) {
    const done = resumed?.manifest.epoch ?? 0;
    if (options.epochsOverride < done) {
      fail(`--epochs ${options.epochsOverride} is below the ${done} epochs the checkpoint has already done.`);
    }
    config = { ...config, epochs: options.epochsOverride };
  }

  try {
    useWebgpuPrecision(runPrecision(config.engine), tf.getBackend());
  } catch (error) {
    return fail(errorMessage(error));
  }

  const rng = new Rng(config.seed);
  const session = await trainer.setup(config, { outDir, emit, signal, rng, resumed, fail });
  let iteratorState: BatchIteratorState | undefined;
  if (resumed) {
    try {
      await session.restore(resumed);
      rng.restore(resumed.manifest.rng.state);
      iteratorState = BatchIteratorState.parse(resumed.manifest.rng.dataIterator);
    } catch (error) {
      session.dispose();
      return fail(`Cannot resume from ${resumed.path}: ${errorMessage(error)}`, 'run');
    }
    epoch = resumed.manifest.epoch;
    step = resumed.manifest.step;
  }

  let iterator: BatchIterator;
  try {
    const extra = config.extraData ? await openExtraData(config.extraData, session.dataset) : null;
    iterator = new BatchIterator(session.dataset, {
      batchSize: config.batchSize,
      seed: config.seed ^ 0x9e3779b9,
      augmentation: config.augmentation,
      prefetch: 1,
      ...(iteratorState ? { state: iteratorState } : {}),
      ...(extra && config.extraData ? { extra: { dataset: extra, ratio: config.extraData.ratio } } : {}),
    });
  } catch (error) {
    session.dispose();
    return fail(errorMessage(error));
  }
  // Written once the config and the dataset are known to fit, so a refused run leaves no folder behind.
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(path.join(outDir, CONFIG_FILE), `${JSON.stringify(session.configFile, null, 2)}\n`);

  const stepsPerEpoch = iterator.batchesPerEpoch;
  const lrConfig = {
    lr: scaledLearningRate(config.optimizer.baseLr, config.batchSize),
    minLr: config.optimizer.minLr,
    warmupEpochs: config.optimizer.warmupEpochs,
    epochs: config.epochs,
  };
  emit({
    type: 'started',
    runKind: trainer.runKind,
    backend: tf.getBackend() as 'tensorflow' | 'webgpu' | 'wasm' | 'cpu',
    outDir,
    step,
    epoch,
    totalSteps: stepsPerEpoch * config.epochs,
    stepsPerEpoch,
    resumedFrom: resumed?.path ?? null,
  });
  for (const line of session.intro(stepsPerEpoch)) emit(line);

  const started = performance.now();
  let lastLr = 0;
  const stepEvents = new StepEvents(emit, { ...config, stepsPerEpoch });
  const metricsEvery = config.metricsEvery ?? defaultMetricsEvery(tf.getBackend());
  const pending = new PendingMetrics<PendingStep>();
  /** Reads the pending steps' metrics and emits their events in order; stops the run at the first non-finite value. */
  const readPending = async (): Promise<void> => {
    const readStart = performance.now();
    const steps = await pending.read();
    // The read waits for the device to finish the steps' work; a step's own share of it is not known
    // without a read of its own, so it is spread evenly over them (images/s then has no sawtooth).
    const wait = (performance.now() - readStart) / 1000 / Math.max(steps.length, 1);
    for (const { item } of steps) item.seconds += wait;
    for (const { item, values: read } of steps) {
      const { values, extra } = item.settle(read);
      const stop = nonFiniteStop(values, item.step, item.epoch, lastCheckpoint);
      if (stop) {
        step = item.step;
        fail(stop, 'run');
      }
      stepEvents.after(item.step, item.epoch, item.batch, item.seconds, values, item.lr, extra);
    }
  };
  try {
    await session.begin?.({ epoch, step });
    while (epoch < config.epochs) {
      for (let b = 0; b < stepsPerEpoch; b++) {
        if (signal?.aborted) {
          await readPending();
          throw new RunCancelledError();
        }
        const stepStart = performance.now();
        const lr = learningRateAtIteration(lrConfig, epoch, b, stepsPerEpoch);
        const { metrics, settle } = await session.step({ epoch, step, batch: b, lr, iterator });
        step += 1;
        lastLr = lr;
        const seconds = (performance.now() - stepStart) / 1000;
        pending.add({ step, epoch, batch: b, lr, seconds, settle }, metrics);
        const previewDue = session.previewDue?.({ epoch, step }) ?? false;
        if (pending.size >= metricsEvery || previewDue || b === stepsPerEpoch - 1) await readPending();
        if (previewDue) await session.writePreview?.({ epoch, step });
      }
      epoch += 1;
      await session.endEpoch({ epoch, step });
      if (epoch % config.checkpointEvery === 0 || epoch === config.epochs) {
        lastCheckpoint = await session.save({
          epoch,
          step,
          rng: { state: rng.state(), dataIterator: iterator.state() },
          metrics: session.summary,
          lr: lastLr,
        });
        emit({ type: 'checkpoint', step, epoch, path: lastCheckpoint });
      }
    }
    const done: DoneEvent = {
      type: 'done',
      step,
      epoch,
      output: lastCheckpoint === null ? null : { kind: 'checkpoint', path: lastCheckpoint },
      seconds: (performance.now() - started) / 1000,
      summary: { ...session.summary, images_per_s: stepEvents.imagesPerSecond },
    };
    emit(done);
    return done;
  } catch (error) {
    if (error instanceof RunFailedError) throw error;
    // The steps before the error finished: their events come first, and a NaN among them is the cause.
    if (pending.size > 0) {
      await readPending().catch((readError: unknown) => {
        if (readError instanceof RunFailedError) throw readError;
        // Otherwise the first error is the one to report (below).
      });
    }
    // An error on the way out of a cancelled run (a step or a held-out pass seeing the abort) is the cancel.
    if (error instanceof RunCancelledError || signal?.aborted) {
      emit({
        type: 'log',
        level: 'warn',
        message: `Cancelled at step ${step}; the last checkpoint (${lastCheckpoint ?? 'none'}) is kept.`,
      });
      throw error instanceof RunCancelledError ? error : new RunCancelledError();
    }
    return fail(`${trainer.title} stopped at step ${step}: ${errorMessage(error)}`, 'run');
  } finally {
    pending.dispose();
    iterator.close();
    session.dispose();
  }
}

/** A sink that keeps events, for tests and callers that want them afterwards. */
export function collectEvents(): { events: RunEvent[]; emit: RunEventSink } {
  const events: RunEvent[] = [];
  return { events, emit: (event) => events.push(event) };
}
