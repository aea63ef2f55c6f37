import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeIssues } from '@shared/config-object';
import {
  gridCoordinates,
  gridShape,
  LANDSCAPE_FILE,
  LANDSCAPE_FORMAT,
  LANDSCAPE_PGD_VERSION,
  LANDSCAPE_VERSION,
  LandscapeRequest,
  LandscapeResult,
  lossesFor,
  type LandscapeLoss,
} from '@shared/landscape';
import { writeFileAtomic } from '../io/atomic-file';
import type { RunEventSink } from '@shared/run-events';
import { openDataset, type Dataset } from '../data';
import { disposeParams, type PatchMask } from '../model';
import { loadCheckpointModel, type CheckpointModel } from './checkpoint-model';
import { planeDirections } from './directions';
import {
  cleanCrossEntropy,
  fixedMasks,
  loadExamples,
  pgdCrossEntropy,
  reconstructionLoss,
  type ExampleSet,
} from './objectives';
import { LandscapeCancelledError, sweepPlane, type PointEvaluator, type PointValue } from './sweep';
import { errorMessage } from '@shared/unknown-value';

export interface LandscapeRunOptions {
  /** landscape.json is written here (created if missing). */
  outDir: string;
  emit: RunEventSink;
  /** Stops the sweep before the next grid point; nothing is written. */
  signal?: AbortSignal;
}

export class LandscapeFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LandscapeFailedError';
  }
}

export function landscapeFile(outDir: string): string {
  return path.join(outDir, LANDSCAPE_FILE);
}

/** The run config's own mask ratio / norm_pix setting, when the checkpoint records one. */
function runConfigValue<T>(model: CheckpointModel, key: string, check: (v: unknown) => v is T): T | undefined {
  const config = model.manifest.runConfig;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return undefined;
  const value = (config as Record<string, unknown>)[key];
  return check(value) ? value : undefined;
}

/**
 * The loss landscape of one checkpoint (paper Fig. 7): seeded filter-normalised directions, the loss
 * at every grid point on the first `examples` images, events as it goes (started, log, a metrics
 * event per point, progress per row, done / failed), and landscape.json in `outDir`. The model's
 * weights are assigned in place per point and restored afterwards.
 */
export async function computeLandscape(requestInput: unknown, options: LandscapeRunOptions): Promise<LandscapeResult> {
  const { emit, outDir, signal } = options;
  let pointsDone = 0;
  const fail = (message: string): never => {
    emit({ type: 'failed', message, step: pointsDone, lastCheckpoint: null });
    throw new LandscapeFailedError(message);
  };

  const parsed = LandscapeRequest.safeParse(requestInput);
  if (!parsed.success) return fail(`Invalid landscape request: ${describeIssues(parsed.error, '(request)')}`);
  const request = parsed.data;

  let model: CheckpointModel;
  try {
    model = await loadCheckpointModel(request.checkpoint);
  } catch (error) {
    return fail(errorMessage(error));
  }
  let examples: ExampleSet | null = null;
  let masks: PatchMask[] = [];
  try {
    const loss: LandscapeLoss = request.loss ?? (model.kind === 'finetune' ? 'ce' : 'recon');
    if (!lossesFor(model.kind).includes(loss)) {
      fail(
        `The ${loss} loss needs a ${loss === 'recon' ? 'pre-training' : 'fine-tuning'} checkpoint; ` +
          `${model.path} is a ${model.kind} one (use ${lossesFor(model.kind).join(' or ')}).`,
      );
    }
    let dataset: Dataset;
    try {
      dataset = await openDataset(request.dataset);
    } catch (error) {
      return fail(errorMessage(error));
    }
    if (dataset.imageSize !== model.config.imageSize) {
      fail(
        `The model expects ${model.config.imageSize} px images but the dataset has ${dataset.imageSize} px ones; ` +
          `choose the dataset's image size to match.`,
      );
    }
    if (model.numClasses !== null && model.numClasses !== dataset.numClasses) {
      fail(
        `The classifier was trained on ${model.numClasses} classes but the dataset has ${dataset.numClasses}; ` +
          `use the dataset it was fine-tuned on.`,
      );
    }
    const count = Math.min(request.examples, dataset.length);
    const { cols, rows } = gridShape(request.grid);
    const alphas = gridCoordinates(cols, request.span);
    const betas = gridCoordinates(rows, request.span);
    const totalPoints = cols * rows;
    const maskRatio =
      request.maskRatio ?? runConfigValue(model, 'maskRatio', (v): v is number => typeof v === 'number') ?? 0.75;
    const normPixLoss =
      request.normPixLoss ?? runConfigValue(model, 'normPixLoss', (v): v is boolean => typeof v === 'boolean') ?? true;

    emit({
      type: 'started',
      runKind: 'evaluate',
      backend: tf.getBackend() as 'tensorflow' | 'webgpu' | 'wasm' | 'cpu',
      outDir,
      step: 0,
      epoch: 0,
      totalSteps: totalPoints,
      stepsPerEpoch: cols,
      resumedFrom: null,
    });
    const lossText = {
      ce: 'clean cross-entropy',
      'pgd-ce': `cross-entropy under PGD-${request.pgd.steps} (${request.pgd.threat}, eps ${(request.pgd.eps * 255).toFixed(3)}/255)`,
      recon: `reconstruction loss (mask ratio ${maskRatio}, ${normPixLoss ? 'norm_pix' : 'raw pixel'} targets)`,
    }[loss];
    emit({
      type: 'log',
      level: 'info',
      message:
        `Loss landscape of ${model.path} (${model.kind}, epoch ${model.manifest.epoch}): ${lossText} ` +
        `on the first ${count} images of ${dataset.description.summary} Grid ${cols} x ${rows} over ` +
        `[${request.span[0]}, ${request.span[1]}], directions seeded ${request.seed}.`,
    });
    if (count < request.examples) {
      emit({
        type: 'log',
        level: 'warn',
        message: `The dataset has ${dataset.length} images; using all of them instead of ${request.examples}.`,
      });
    }
    if (model.dbatMerge !== null) {
      emit({
        type: 'log',
        level: 'info',
        message: `A DBAT head of 2 x ${dataset.numClasses} outputs: class y scores ${model.dbatMerge}(z_y, z_{y+C}).`,
      });
    }

    examples = await loadExamples(dataset, count, request.batchSize);
    const directions = planeDirections(model.weights, request.seed, { ignoreBiasNorm: request.ignoreBiasNorm });
    let evaluate: PointEvaluator;
    if (loss === 'recon') {
      masks = fixedMasks(examples, model.config, maskRatio, request.seed);
      evaluate = reconstructionLoss(model.params, model.config, examples, masks, normPixLoss);
    } else {
      const classifier = model.classifier;
      if (!classifier) return fail(`internal: ${model.path} has no classifier`);
      evaluate =
        loss === 'ce'
          ? cleanCrossEntropy(classifier, examples, dataset.numClasses)
          : pgdCrossEntropy(classifier, examples, request.pgd, request.seed, signal);
    }

    const started = performance.now();
    const grid = await sweepPlane(model.params, directions, alphas, betas, evaluate, {
      ...(signal ? { signal } : {}),
      onPoint: ({ row, col, alpha, beta, value }) => {
        pointsDone += 1;
        emit({
          type: 'metrics',
          step: pointsDone,
          epoch: row + (col + 1) / cols,
          values: {
            alpha,
            beta,
            ...(Number.isFinite(value.loss) ? { loss: value.loss } : {}),
            ...(value.accuracy !== null ? { accuracy: value.accuracy } : {}),
          },
        });
      },
      onRow: (row) => {
        const seconds = (performance.now() - started) / 1000;
        emit({
          type: 'progress',
          epoch: row + 1,
          epochs: rows,
          step: pointsDone,
          totalSteps: totalPoints,
          imagesPerSecond: (pointsDone * count) / Math.max(seconds, 1e-9),
          etaSeconds: (seconds / pointsDone) * (totalPoints - pointsDone),
        });
      },
    });
    const seconds = (performance.now() - started) / 1000;

    const result = LandscapeResult.parse({
      format: LANDSCAPE_FORMAT,
      version: LANDSCAPE_VERSION,
      alphas,
      betas,
      losses: grid.map((row) => row.map((v) => (Number.isFinite(v.loss) ? v.loss : null))),
      accuracy: loss === 'recon' ? null : grid.map((row) => row.map((v) => v.accuracy ?? 0)),
      ...extremes(grid, alphas, betas),
      centre: centreLoss(grid, alphas, betas),
      protocol: {
        checkpoint: model.path,
        checkpointKind: model.kind,
        checkpointEpoch: model.manifest.epoch,
        checkpointStep: model.manifest.step,
        dataset: dataset.description,
        examples: examples.count,
        loss,
        seed: request.seed,
        batchSize: request.batchSize,
        directions: { distribution: 'gaussian', normalization: 'filter', ignoreBiasNorm: request.ignoreBiasNorm },
        span: request.span,
        pgd: loss === 'pgd-ce' ? { ...request.pgd, version: LANDSCAPE_PGD_VERSION } : null,
        recon: loss === 'recon' ? { maskRatio, normPixLoss } : null,
        dbatMerge: model.dbatMerge,
        backend: tf.getBackend(),
      },
      seconds,
      createdAt: new Date().toISOString(),
    });
    const file = await writeResult(outDir, result);
    emit({ type: 'log', level: 'info', message: `Landscape written to ${file}` });
    emit({
      type: 'done',
      step: totalPoints,
      epoch: rows,
      output: { kind: 'landscape', path: file },
      seconds,
      summary: {
        ...(result.min ? { loss_min: result.min.value } : {}),
        ...(result.max ? { loss_max: result.max.value } : {}),
        ...(result.centre !== null ? { loss_centre: result.centre } : {}),
        points: totalPoints,
        examples: examples.count,
      },
    });
    return result;
  } catch (error) {
    if (error instanceof LandscapeFailedError) throw error;
    if (error instanceof LandscapeCancelledError || signal?.aborted) {
      emit({ type: 'log', level: 'warn', message: `Cancelled after ${pointsDone} grid points; nothing was written.` });
      throw error instanceof LandscapeCancelledError ? error : new LandscapeCancelledError();
    }
    return fail(`The landscape stopped after ${pointsDone} grid points: ${errorMessage(error)}`);
  } finally {
    for (const mask of masks) mask.dispose();
    examples?.dispose();
    disposeParams(model.params);
  }
}

function extremes(
  grid: PointValue[][],
  alphas: readonly number[],
  betas: readonly number[],
): Pick<LandscapeResult, 'min' | 'max'> {
  let min: LandscapeResult['min'] = null;
  let max: LandscapeResult['max'] = null;
  grid.forEach((row, r) =>
    row.forEach((v, c) => {
      if (!Number.isFinite(v.loss)) return;
      const point = { value: v.loss, alpha: alphas[c] ?? NaN, beta: betas[r] ?? NaN };
      if (min === null || v.loss < min.value) min = point;
      if (max === null || v.loss > max.value) max = point;
    }),
  );
  return { min, max };
}

function centreLoss(grid: PointValue[][], alphas: readonly number[], betas: readonly number[]): number | null {
  const c = alphas.indexOf(0);
  const r = betas.indexOf(0);
  const value = grid[r]?.[c]?.loss;
  return r >= 0 && c >= 0 && value !== undefined && Number.isFinite(value) ? value : null;
}

async function writeResult(outDir: string, result: LandscapeResult): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const file = landscapeFile(outDir);
  await writeFileAtomic(file, `${JSON.stringify(result)}\n`);
  return file;
}
