import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { RUN_CHECKPOINTS_DIR } from '@shared/checkpoint';
import { describeIssues } from '@shared/config-object';
import { negligiblePenaltyWarning } from '@shared/mi-penalty';
import { withDecoder, type ModelConfig } from '@shared/model-config';
import { PretrainConfig, type PretrainOptimizer } from '@shared/pretrain-config';
import type { DoneEvent, RunEvent, RunEventSink } from '@shared/run-events';
import { restoreCheckpoint, saveCheckpoint, type GoodCheckpoint } from '../checkpoint';
import { modelForDataset, openDataset, type Dataset } from '../data';
import { errorMessage } from '@shared/unknown-value';
import { datasetFraction } from '../data/subset';
import { disposeParams, initMaeParams, type ParamMap } from '../model';
import { Rng } from '../rng';
import { AdamW, isNoWeightDecayInPretraining } from '../train/optimizer';
import {
  runTraining,
  type CheckpointCommon,
  type Position,
  type StepInput,
  type StepMetrics,
  type StepOutput,
  type Trainer,
  type TrainingRunOptions,
  type TrainingSession,
} from '../train/run-lifecycle';
import { writePreviewSnapshot } from './previews';
import { penaltyAtStart, penaltyIsOn, pretrainStep } from './step';

/**
 * Pre-training (engine_pretrain.py's part; the lifecycle is train/run-lifecycle.ts): data, MIMIR
 * steps, AdamW with warm-up + cosine per iteration, epoch means, previews, checkpoints.
 */
export type PretrainRunOptions = TrainingRunOptions;

export { CONFIG_FILE } from '../train/run-lifecycle';
export const CHECKPOINTS_DIR = RUN_CHECKPOINTS_DIR;
export const PREVIEWS_DIR = 'previews';

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

const pretrainer: Trainer<PretrainConfig> = {
  runKind: 'pretrain',
  title: 'Pre-training',
  readConfig(input, resumed, fail) {
    const parsed = PretrainConfig.safeParse(resumed ? resumed.manifest.runConfig : input);
    if (!parsed.success) return fail(`Invalid pre-training config: ${describeIssues(parsed.error)}`);
    return parsed.data;
  },
  async setup(config, { outDir, emit, rng, fail }) {
    let dataset: Dataset;
    let modelConfig: ModelConfig;
    try {
      dataset = datasetFraction(await openDataset(config.dataset), config.trainFraction);
      modelConfig = resolveModelConfig(config, dataset);
    } catch (error) {
      return fail(errorMessage(error));
    }
    const params: ParamMap = initMaeParams(modelConfig, rng.fork());
    const optimizer = createPretrainOptimizer(params, config.optimizer);
    return new PretrainSession(config, modelConfig, dataset, params, optimizer, rng, outDir, emit);
  },
};

export async function runPretraining(configInput: unknown, options: PretrainRunOptions): Promise<DoneEvent> {
  return runTraining(pretrainer, configInput, options);
}

/** One pre-training run's model, optimiser and previews: MIMIR steps, epoch means, checkpoints. */
class PretrainSession implements TrainingSession {
  readonly configFile: unknown;
  readonly summary: Record<string, number> = {};
  private sums = { loss: 0, recon: 0, mi: 0, count: 0 };
  private previewBatch: tf.Tensor4D | null = null;

  constructor(
    private readonly config: PretrainConfig,
    private readonly modelConfig: ModelConfig,
    readonly dataset: Dataset,
    private readonly params: ParamMap,
    private readonly optimizer: AdamW,
    private readonly rng: Rng,
    private readonly outDir: string,
    private readonly emit: RunEventSink,
  ) {
    this.configFile = { ...config, model: modelConfig };
  }

  async restore(resumed: GoodCheckpoint): Promise<void> {
    await restoreCheckpoint(resumed.path, this.params, this.optimizer, { kind: 'pretrain' });
  }

  intro(stepsPerEpoch: number): Array<Extract<RunEvent, { type: 'log' }>> {
    const { config, modelConfig } = this;
    return [
      {
        type: 'log',
        level: 'info',
        message: `${config.mode} pre-training on ${this.dataset.description.summary} Model ${modelConfig.width}x${modelConfig.depth}, ${stepsPerEpoch} steps per epoch of ${config.batchSize} images.`,
      },
    ];
  }

  async begin(at: Position): Promise<void> {
    const indices = Array.from({ length: Math.min(this.config.previewCount, this.dataset.length) }, (_, i) => i);
    const { images } = await this.dataset.get(indices);
    const size = this.dataset.imageSize;
    this.previewBatch = tf.tensor4d(images, [indices.length, size, size, 3]);
    if (at.step === 0) await this.preview(at);
  }

  async step({ step, lr, iterator }: StepInput): Promise<StepOutput> {
    const { config, params } = this;
    const batch = await iterator.next();
    const penalty = step === 0 ? this.penaltyCheck(batch.images) : null;
    const every = config.mi.penaltyGradEvery;
    const result = pretrainStep({
      params,
      config: this.modelConfig,
      run: config,
      images: batch.images,
      rng: this.rng,
      measurePenaltyGradient: every > 0 && step % every === 0,
    });
    const { gradNorm } = this.optimizer.applyGradients(result.grads, lr);
    tf.dispose([...result.grads.values(), batch.images, batch.labels]);
    const metrics: Record<string, tf.Tensor> = {
      loss: result.loss,
      recon_loss: result.recon,
      mi: result.mi,
      attack_loss: result.attackLoss,
      ...(result.penaltyGradRatio ? { penalty_grad_ratio: result.penaltyGradRatio } : {}),
      ...(gradNorm ? { grad_norm: gradNorm } : {}),
      ...(penalty ? { start_recon: penalty.recon, start_mi: penalty.mi } : {}),
    };
    return { metrics, settle: (read) => this.settle(read) };
  }

  /** A step's metrics from its read values (see step()); adds them to the epoch's sums. */
  private settle(read: Record<string, number>): StepMetrics {
    const { config } = this;
    if (read.start_recon !== undefined && read.start_mi !== undefined) {
      this.reportPenalty(read.start_recon, read.start_mi);
    }
    const values = {
      loss: read.loss ?? NaN,
      recon_loss: read.recon_loss ?? NaN,
      mi: read.mi ?? NaN,
      attack_loss: read.attack_loss ?? NaN,
    };
    this.sums.loss += values.loss;
    this.sums.recon += values.recon_loss;
    this.sums.mi += values.mi;
    this.sums.count += 1;
    const extra = {
      ...(penaltyIsOn(config) ? { penalty_share: (config.mi.lambda * values.mi) / values.recon_loss } : {}),
      ...(read.penalty_grad_ratio !== undefined ? { penalty_grad_ratio: read.penalty_grad_ratio } : {}),
      ...(read.grad_norm !== undefined ? { grad_norm: read.grad_norm } : {}),
    };
    return { values, extra };
  }

  previewDue(at: Position): boolean {
    return this.config.previewEvery > 0 && at.step % this.config.previewEvery === 0;
  }

  async writePreview(at: Position): Promise<void> {
    await this.preview(at);
  }

  async endEpoch(at: Position): Promise<void> {
    const { sums } = this;
    Object.assign(this.summary, {
      loss: sums.loss / sums.count,
      recon_loss: sums.recon / sums.count,
      mi: sums.mi / sums.count,
    });
    this.sums = { loss: 0, recon: 0, mi: 0, count: 0 };
    this.emit({
      type: 'metrics',
      ...at,
      values: {
        epoch_loss: this.summary.loss ?? NaN,
        epoch_recon_loss: this.summary.recon_loss ?? NaN,
        epoch_mi: this.summary.mi ?? NaN,
      },
    });
    if (this.config.previewEvery === 0) await this.preview(at);
  }

  async save({ lr, ...common }: CheckpointCommon): Promise<string> {
    const saved = await saveCheckpoint(
      path.join(this.outDir, CHECKPOINTS_DIR),
      {
        kind: 'pretrain',
        ...common,
        runConfig: JSON.parse(JSON.stringify(this.config)),
        modelConfig: JSON.parse(JSON.stringify(this.modelConfig)),
        params: this.params,
        optimizer: { adamw: this.optimizer, lr },
      },
      { keepLast: this.config.keepCheckpoints },
    );
    return saved.path;
  }

  dispose(): void {
    this.previewBatch?.dispose();
    this.optimizer.dispose();
    disposeParams(this.params);
  }

  private async preview({ step, epoch }: Position): Promise<void> {
    if (!this.previewBatch) return;
    const dir = path.join(this.outDir, PREVIEWS_DIR, `step-${String(step).padStart(7, '0')}`);
    const snapshot = await writePreviewSnapshot(this.params, this.modelConfig, this.config, this.previewBatch, dir);
    this.emit({ type: 'preview', step, epoch, imageSize: this.modelConfig.imageSize, ...snapshot });
  }

  /**
   * Before the first step of a MIMIR run: the untrained model's recon and MI on the first batch, left
   * on the device with the step's metrics; `reportPenalty` says whether the penalty can matter.
   */
  private penaltyCheck(images: tf.Tensor4D): { recon: tf.Scalar; mi: tf.Scalar } | null {
    const { config } = this;
    if (config.mode !== 'mimir') return null;
    return penaltyAtStart(this.params, this.modelConfig, config, images, new Rng(config.seed).fork());
  }

  private reportPenalty(recon: number, mi: number): void {
    const { config } = this;
    const share = (config.mi.lambda * mi) / recon;
    const settings = { mode: config.mode, estimator: config.mi.estimator, lambda: config.mi.lambda };
    const warning = negligiblePenaltyWarning(settings, share, true);
    this.emit({
      type: 'log',
      level: warning ? 'warn' : 'info',
      message:
        warning ??
        `MI penalty on the first batch: ${config.mi.estimator} MI ${mi.toPrecision(3)}, recon ${recon.toPrecision(3)}, lambda * MI / recon = ${share.toExponential(1)}.`,
    });
  }
}
