import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../io/atomic-file';
import { RUN_CHECKPOINTS_DIR } from '../../shared/checkpoint';
import { describeIssues } from '../../shared/config-object';
import { negligiblePenaltyWarning } from '../../shared/mi-penalty';
import { withDecoder, type ModelConfig } from '../../shared/model-config';
import { PretrainConfig, type PretrainOptimizer } from '../../shared/pretrain-config';
import type { DoneEvent, FailureCause, RunEvent, RunEventSink } from '../../shared/run-events';
import { findResumeCheckpoint, restoreCheckpoint, saveCheckpoint, describeLatest } from '../checkpoint';
import { BatchIterator, BatchIteratorState, modelForDataset, openDataset, type Dataset } from '../data';
import { datasetFraction } from '../data/subset';
import { openExtraData } from '../data/extra-data';
import { disposeParams, initMaeParams, type ParamMap } from '../model';
import { Rng } from '../rng';
import { AdamW, isNoWeightDecayInPretraining } from '../train/optimizer';
import { learningRateAtIteration, scaledLearningRate } from '../train/schedule';
import { nonFiniteStop, StepEvents } from '../train/step-events';
import { writePreviewSnapshot } from './previews';
import { penaltyAtStart, penaltyIsOn, pretrainStep } from './step';

/**
 * The pre-training loop: data, MIMIR steps, AdamW with warm-up + cosine per iteration, metrics,
 * previews, checkpoints, resume. Everything it has to say goes out as run events; a failure is a
 * `failed` event (then the error is rethrown) that names the last good checkpoint, which is kept.
 */
export interface PretrainRunOptions {
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

export const CHECKPOINTS_DIR = RUN_CHECKPOINTS_DIR;
export const PREVIEWS_DIR = 'previews';
export const CONFIG_FILE = 'config.json';

/** The run's model for the dataset's images, with the config's decoder size. */
export function resolveModelConfig(config: Pick<PretrainConfig, 'model' | 'decoder'>, dataset: Dataset): ModelConfig {
  return withDecoder(modelForDataset(config.model, dataset), config.decoder);
}

/** AdamW as MAE's pre-training builds it: betas and decay from the config, cls and mask tokens decayed. */
export function createPretrainOptimizer(params: ParamMap, settings: PretrainOptimizer): AdamW {
  return new AdamW(params, {
    betas: [settings.beta1, settings.beta2],
    weightDecay: settings.weightDecay,
    noWeightDecay: isNoWeightDecayInPretraining,
    maxGradNorm: settings.clipGrad,
  });
}

export async function runPretraining(configInput: unknown, options: PretrainRunOptions): Promise<DoneEvent> {
  const { emit, outDir } = options;
  const checkpointsDir = path.join(outDir, CHECKPOINTS_DIR);
  let lastCheckpoint: string | null = null;
  let step = 0;
  /** `config`: the config or its data cannot work (edit a copy); `run`: this attempt stopped (resume may help). */
  const fail = (message: string, cause: FailureCause = 'config'): never => {
    emit({ type: 'failed', message, step, lastCheckpoint, cause });
    throw new RunFailedError(message);
  };

  let resumeFrom: string | null = null;
  let stored: Awaited<ReturnType<typeof findResumeCheckpoint>> | null = null;
  if (options.resume) {
    stored = await findResumeCheckpoint(checkpointsDir, options.resumeFrom ?? null);
    if (stored.status === 'none' && options.resume === true) {
      fail(`Nothing to resume in ${outDir}: it holds no checkpoint (${checkpointsDir}).`, 'run');
    }
    if (stored.status === 'corrupt') fail(describeLatest(stored), 'run');
    if (stored.status === 'ok') {
      resumeFrom = stored.path;
      lastCheckpoint = stored.path;
    }
  }
  const resumedManifest = stored?.status === 'ok' ? stored.manifest : null;

  const parsed = PretrainConfig.safeParse(resumedManifest ? resumedManifest.runConfig : configInput);
  if (!parsed.success) return fail(`Invalid pre-training config: ${describeIssues(parsed.error)}`);
  const config = parsed.data;
  if (options.epochsOverride !== undefined) {
    if (options.epochsOverride < (resumedManifest?.epoch ?? 0)) {
      fail(
        `--epochs ${options.epochsOverride} is below the ${resumedManifest?.epoch} epochs the checkpoint has already done.`,
      );
    }
    config.epochs = options.epochsOverride;
  }

  let dataset: Dataset;
  let extra: Dataset | null = null;
  try {
    dataset = datasetFraction(await openDataset(config.dataset), config.trainFraction);
    if (config.extraData) extra = await openExtraData(config.extraData, dataset);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  let modelConfig: ModelConfig;
  try {
    modelConfig = resolveModelConfig(config, dataset);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }

  const rng = new Rng(config.seed);
  const params: ParamMap = initMaeParams(modelConfig, rng.fork());
  const optimizer = createPretrainOptimizer(params, config.optimizer);
  let iteratorState: BatchIteratorState | undefined;
  let epoch = 0;
  if (resumeFrom && resumedManifest) {
    await restoreCheckpoint(resumeFrom, params, optimizer, { kind: 'pretrain' });
    rng.restore(resumedManifest.rng.state);
    iteratorState = BatchIteratorState.parse(resumedManifest.rng.dataIterator);
    epoch = resumedManifest.epoch;
    step = resumedManifest.step;
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
    optimizer.dispose();
    disposeParams(params);
    return fail(error instanceof Error ? error.message : String(error));
  }
  // Written once the config and the dataset are known to fit, so a refused run leaves no folder behind.
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(
    path.join(outDir, CONFIG_FILE),
    `${JSON.stringify({ ...config, model: modelConfig }, null, 2)}\n`,
  );
  const stepsPerEpoch = iterator.batchesPerEpoch;
  const totalSteps = stepsPerEpoch * config.epochs;
  const lrConfig = {
    lr: scaledLearningRate(config.optimizer.baseLr, config.batchSize),
    minLr: config.optimizer.minLr,
    warmupEpochs: config.optimizer.warmupEpochs,
    epochs: config.epochs,
  };
  const previewIndices = Array.from({ length: Math.min(config.previewCount, dataset.length) }, (_, i) => i);
  const previewImages = await dataset.get(previewIndices);
  const previewBatch = tf.tensor4d(previewImages.images, [
    previewIndices.length,
    dataset.imageSize,
    dataset.imageSize,
    3,
  ]);

  emit({
    type: 'started',
    runKind: 'pretrain',
    backend: tf.getBackend() as 'tensorflow' | 'wasm' | 'cpu',
    outDir,
    step,
    epoch,
    totalSteps,
    stepsPerEpoch,
    resumedFrom: resumeFrom,
  });
  emit({
    type: 'log',
    level: 'info',
    message: `${config.mode} pre-training on ${dataset.description.summary} Model ${modelConfig.width}x${modelConfig.depth}, ${stepsPerEpoch} steps per epoch of ${config.batchSize} images.`,
  });

  /** Before the first step of a MIMIR run: say whether its penalty can matter, measured on the first batch. */
  const checkPenalty = (images: tf.Tensor4D): void => {
    if (config.mode !== 'mimir') return;
    const { recon, mi } = penaltyAtStart(params, modelConfig, config, images, new Rng(config.seed).fork());
    const share = (config.mi.lambda * mi) / recon;
    const settings = { mode: config.mode, estimator: config.mi.estimator, lambda: config.mi.lambda };
    const warning = negligiblePenaltyWarning(settings, share, true);
    emit({
      type: 'log',
      level: warning ? 'warn' : 'info',
      message:
        warning ??
        `MI penalty on the first batch: ${config.mi.estimator} MI ${mi.toPrecision(3)}, recon ${recon.toPrecision(3)}, lambda * MI / recon = ${share.toExponential(1)}.`,
    });
  };

  const started = performance.now();
  let lastLr = 0;
  const summary: Record<string, number> = {};
  const stepEvents = new StepEvents(emit, { ...config, stepsPerEpoch });

  const preview = async (): Promise<void> => {
    const dir = path.join(outDir, PREVIEWS_DIR, `step-${String(step).padStart(7, '0')}`);
    const snapshot = await writePreviewSnapshot(params, modelConfig, config, previewBatch, dir);
    emit({ type: 'preview', step, epoch, imageSize: modelConfig.imageSize, ...snapshot });
  };

  try {
    if (step === 0) await preview();
    while (epoch < config.epochs) {
      const sums = { loss: 0, recon: 0, mi: 0, count: 0 };
      for (let b = 0; b < stepsPerEpoch; b++) {
        if (options.signal?.aborted) throw new RunCancelledError();
        const stepStart = performance.now();
        const batch = await iterator.next();
        if (step === 0) checkPenalty(batch.images);
        const lr = learningRateAtIteration(lrConfig, epoch, b, stepsPerEpoch);
        const every = config.mi.penaltyGradEvery;
        const result = pretrainStep({
          params,
          config: modelConfig,
          run: config,
          images: batch.images,
          rng,
          measurePenaltyGradient: every > 0 && step % every === 0,
        });
        const { gradNorm } = optimizer.applyGradients(result.grads, lr);
        const [loss, recon, mi, attackLoss, norm, gradRatio] = await Promise.all([
          result.loss.data(),
          result.recon.data(),
          result.mi.data(),
          result.attackLoss.data(),
          gradNorm ? gradNorm.data() : Promise.resolve(null),
          result.penaltyGradRatio ? result.penaltyGradRatio.data() : Promise.resolve(null),
        ]);
        result.dispose();
        gradNorm?.dispose();
        batch.images.dispose();
        batch.labels.dispose();
        step += 1;
        lastLr = lr;
        const values = {
          loss: loss[0] ?? NaN,
          recon_loss: recon[0] ?? NaN,
          mi: mi[0] ?? NaN,
          attack_loss: attackLoss[0] ?? NaN,
        };
        const stop = nonFiniteStop(values, step, epoch, lastCheckpoint);
        if (stop) fail(stop, 'run');
        const seconds = (performance.now() - stepStart) / 1000;
        sums.loss += values.loss;
        sums.recon += values.recon_loss;
        sums.mi += values.mi;
        sums.count += 1;
        stepEvents.after(step, epoch, b, seconds, values, lr, {
          ...(penaltyIsOn(config) ? { penalty_share: (config.mi.lambda * values.mi) / values.recon_loss } : {}),
          ...(gradRatio ? { penalty_grad_ratio: gradRatio[0] ?? NaN } : {}),
          ...(norm ? { grad_norm: norm[0] ?? 0 } : {}),
        });
        if (config.previewEvery > 0 && step % config.previewEvery === 0) await preview();
      }
      epoch += 1;
      Object.assign(summary, {
        loss: sums.loss / sums.count,
        recon_loss: sums.recon / sums.count,
        mi: sums.mi / sums.count,
      });
      emit({
        type: 'metrics',
        step,
        epoch,
        values: {
          epoch_loss: summary.loss ?? NaN,
          epoch_recon_loss: summary.recon_loss ?? NaN,
          epoch_mi: summary.mi ?? NaN,
        },
      });
      if (config.previewEvery === 0) await preview();
      if (epoch % config.checkpointEvery === 0 || epoch === config.epochs) {
        const saved = await saveCheckpoint(
          checkpointsDir,
          {
            kind: 'pretrain',
            epoch,
            step,
            runConfig: JSON.parse(JSON.stringify(config)),
            modelConfig: JSON.parse(JSON.stringify(modelConfig)),
            params,
            optimizer: { adamw: optimizer, lr: lastLr },
            rng: { state: rng.state(), dataIterator: iterator.state() },
            metrics: summary,
          },
          { keepLast: config.keepCheckpoints },
        );
        lastCheckpoint = saved.path;
        emit({ type: 'checkpoint', step, epoch, path: saved.path });
      }
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
    if (error instanceof RunCancelledError) {
      emit({
        type: 'log',
        level: 'warn',
        message: `Cancelled at step ${step}; the last checkpoint (${lastCheckpoint ?? 'none'}) is kept.`,
      });
      throw error;
    }
    return fail(
      `Pre-training stopped at step ${step}: ${error instanceof Error ? error.message : String(error)}`,
      'run',
    );
  } finally {
    iterator.close();
    previewBatch.dispose();
    optimizer.dispose();
    disposeParams(params);
  }
}

/** A sink that keeps events, for tests and callers that want them afterwards. */
export function collectEvents(): { events: RunEvent[]; emit: RunEventSink } {
  const events: RunEvent[] = [];
  return { events, emit: (event) => events.push(event) };
}
