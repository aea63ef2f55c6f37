import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type EvaluatedExamples, type GradientMaskingReport } from '@shared/attack-config';
import { describeIssues } from '@shared/config-object';
import {
  EVALUATION_FORMAT,
  EVALUATION_REPORT_FILE,
  EVALUATION_VERSION,
  EVALUATION_VERSIONS,
  EvaluationReport,
  EvaluationRequest,
  type AttackOutcome,
  type CorruptionCell,
  type CorruptionReport,
  type EvaluationRequestInput,
  type WorstCase,
} from '@shared/evaluation';
import { writeFileAtomic } from '../io/atomic-file';
import type { RunEvent, RunEventSink } from '@shared/run-events';
import { errorMessage } from '@shared/unknown-value';
import {
  blackBoxCheck,
  maskingReport,
  maskingWarnings,
  randomnessCheck,
  unboundedEpsCheck,
  zeroGradientCheck,
  type BlackBoxCheck,
} from '../attacks';
import { openDataset, type Dataset } from '../data';
import { distinctSample } from '../rng';
import { noEvidenceFlags } from './evidence';
import { EvaluatedClassifier } from './model';
import { planEvaluation, type EvaluationPlan, type PlannedAttack } from './plan';
import { predictionsAt, runPlanned, type BatchContext } from './batch';
import { corruptBatch, corruptionCells } from './corrupted-batch';
import { AttackTally } from './tally';

export interface EvaluateOptions {
  outDir: string;
  emit?: RunEventSink;
  signal?: AbortSignal;
}

export class EvaluationCancelledError extends Error {
  constructor() {
    super('The evaluation was cancelled.');
    this.name = 'EvaluationCancelledError';
  }
}

/**
 * Indices of the evaluated examples: the first n, n distinct ones drawn with the seed (increasing), or
 * the given ids (in their order), each of which must be in the split.
 */
export function selectExamples(
  length: number,
  count: number,
  pick: 'first' | 'random' | 'ids',
  seed: number,
  ids: readonly number[] = [],
): number[] {
  if (pick === 'ids') {
    const outside = ids.filter((id) => id >= length);
    if (outside.length > 0) {
      throw new RangeError(
        `examples.ids: ${outside.slice(0, 5).join(', ')}${outside.length > 5 ? ', ...' : ''} ${outside.length === 1 ? 'is' : 'are'} past the end of the split (${length} examples, ids 0 to ${length - 1}).`,
      );
    }
    return [...ids];
  }
  const n = Math.min(count, length);
  if (pick === 'first') return Array.from({ length: n }, (_, i) => i);
  return distinctSample(length, n, seed);
}

/** The examples a request names, in a split of `length` examples (selectExamples with its fields). */
export function requestedExamples(request: EvaluationRequest, length: number): number[] {
  const { count, pick, ids } = request.examples;
  return selectExamples(length, count, pick, request.seed, ids);
}

function isGradientAttack(planned: PlannedAttack): boolean {
  if (planned.kind === 'natural') return false;
  if (planned.kind === 'autoattack') return true;
  return planned.spec.attack !== 'square';
}

/**
 * Robust evaluation (spec section 6) of a fine-tuned classifier: natural accuracy, the requested
 * attacks, the per-point worst case over the attacks within the threat model, gradient-masking
 * checks, flipped examples (listed, and a few written as PNG strips) and common-corruption accuracy.
 * Batches of examples go through every attack in turn (batch.ts), each attack's tally gathering its
 * outcome (tally.ts), so memory stays at one batch whatever n is. Progress and logs go out as run
 * events; the report is returned and written to outDir/report.json. A cancel throws
 * EvaluationCancelledError; any other error is a `failed` event, then thrown.
 */
export async function evaluate(input: EvaluationRequestInput, options: EvaluateOptions): Promise<EvaluationReport> {
  const emit = options.emit ?? (() => undefined);
  try {
    return await runEvaluation(input, options, emit);
  } catch (error) {
    const cancelled = options.signal?.aborted === true;
    if (cancelled) throw new EvaluationCancelledError();
    emit({
      type: 'failed',
      message: errorMessage(error),
      step: null,
      lastCheckpoint: null,
    });
    throw error;
  }
}

async function runEvaluation(
  input: EvaluationRequestInput,
  options: EvaluateOptions,
  emit: RunEventSink,
): Promise<EvaluationReport> {
  const started = performance.now();
  const parsed = EvaluationRequest.safeParse(input);
  if (!parsed.success) throw new Error(`Invalid evaluation request: ${describeIssues(parsed.error, '(request)')}`);
  const request = parsed.data;
  const backend = tf.getBackend();
  const model = await EvaluatedClassifier.load(request.checkpoint);
  try {
    const ckpt = model.checkpoint;
    const dataset = await openDataset(request.dataset);
    checkCompatible(dataset, ckpt.modelConfig.imageSize, ckpt.numClasses, ckpt.classNames, emit);
    const ids = requestedExamples(request, dataset.length);
    const source = `${dataset.description.kind}/${dataset.description.split}`;
    const examples: EvaluatedExamples = { count: ids.length, ids, source };
    const plan = planEvaluation(request, dataset.imageSize);
    const tallies = plan.attacks.map((planned) => new AttackTally(planned, request.flipped));
    const batches = Math.ceil(ids.length / request.batchSize);
    const unitsPerBatch = plan.attacks.length + (plan.corruptions ? 1 : 0) + 1;
    const totalUnits = Math.max(1, batches * unitsPerBatch);
    const progress = progressReporter(emit, totalUnits);

    emit({
      type: 'started',
      runKind: 'evaluate',
      backend: backend as 'tensorflow' | 'webgpu' | 'wasm' | 'cpu',
      outDir: options.outDir,
      step: 0,
      epoch: 0,
      totalSteps: totalUnits,
      stepsPerEpoch: totalUnits,
      resumedFrom: null,
    });
    emit({
      type: 'log',
      level: 'info',
      message:
        `Evaluating ${ckpt.path} (${ckpt.method}, ${ckpt.numClasses} classes) on ${ids.length} examples of ` +
        `${dataset.description.summary} Threat ${plan.threat}, eps ${request.eps}/255; attacks: ` +
        `${[...plan.attacks.map((a) => a.label), ...(plan.corruptions ? ['corruptions'] : [])].join(', ')}.`,
    });

    const cleanCorrect: boolean[] = [];
    const corruptionCorrect = new Map<string, number>();
    let masking: { report: GradientMaskingReport; examples: EvaluatedExamples } | null = null;
    let corruptionMs = 0;
    const batchSize = request.batchSize;

    for (let b = 0; b < batches; b++) {
      const batchIds = ids.slice(b * batchSize, (b + 1) * batchSize);
      const data = await dataset.get(batchIds);
      const n = batchIds.length;
      const size = dataset.imageSize;
      const x = tf.tensor4d(data.images, [n, size, size, 3], 'float32');
      try {
        throwIfCancelled(options.signal);
        const cleanPred = await predictionsAt(model, x);
        const correct = Array.from(data.labels, (label, i) => cleanPred[i] === label);
        cleanCorrect.push(...correct);
        progress.advance(n);
        const batch: BatchContext = {
          model,
          x,
          labels: data.labels,
          ids: batchIds,
          cleanPred,
          cleanCorrect: correct,
          batchSize,
          signal: options.signal,
        };

        if (b === 0 && request.maskingChecks && plan.attacks.some(isGradientAttack)) {
          masking = await maskingChecks(model, x, data.labels, plan, request.seed, { count: n, ids: batchIds, source });
        }

        for (const tally of tallies) {
          throwIfCancelled(options.signal);
          const t0 = performance.now();
          await runPlanned(tally, batch);
          tally.durationMs += performance.now() - t0;
          progress.advance(n);
        }

        if (plan.corruptions) {
          const t0 = performance.now();
          for (const cell of corruptionCells(plan.corruptions)) {
            throwIfCancelled(options.signal);
            const corrupted = await corruptBatch(data.images, batchIds, size, cell, plan.corruptions, request.seed);
            const xc = tf.tensor4d(corrupted, [n, size, size, 3], 'float32');
            const pred = await predictionsAt(model, xc);
            xc.dispose();
            const key = `${cell.type}/${cell.severity}`;
            const right = Array.from(data.labels).filter((label, i) => pred[i] === label).length;
            corruptionCorrect.set(key, (corruptionCorrect.get(key) ?? 0) + right);
          }
          corruptionMs += performance.now() - t0;
          progress.advance(n);
        }
      } finally {
        x.dispose();
      }
    }

    const naturalAccuracy = cleanCorrect.filter(Boolean).length / Math.max(cleanCorrect.length, 1);
    const outcomes: AttackOutcome[] = [];
    await mkdir(options.outDir, { recursive: true });
    for (const tally of tallies) {
      outcomes.push(
        await tally.outcome({
          plan,
          seed: request.seed,
          backend,
          examples,
          outDir: options.outDir,
          imageSize: dataset.imageSize,
        }),
      );
    }
    attachMaskingWarnings(outcomes, tallies, masking?.report ?? null);
    const blackBox = blackBoxFromOutcomes(outcomes, tallies, examples.count);
    if (masking && blackBox) {
      const merged = maskingReport({
        zeroGradient: masking.report.zeroGradient,
        randomness: masking.report.randomness,
        unboundedEps: masking.report.unboundedEps,
        blackBox: blackBox.check,
      });
      masking = { report: merged, examples: masking.examples };
      if (blackBox.check.flagged) {
        const warning = maskingWarnings({ blackBox: blackBox.check }).find((w) => w.kind === 'black-box');
        const target = outcomes.find((o) => o.key === blackBox.key);
        if (warning && target) target.warnings.push(warning);
      }
    }

    const worstCase = worstCaseOf(tallies, cleanCorrect);
    const noEvidence = noEvidenceFlags({ naturalAccuracy, numClasses: ckpt.numClasses, attacks: outcomes, worstCase });
    const corruptions = plan.corruptions
      ? corruptionReportOf(plan, corruptionCorrect, examples, request.seed, backend, corruptionMs)
      : null;

    const report = EvaluationReport.parse({
      format: EVALUATION_FORMAT,
      version: EVALUATION_VERSION,
      createdAt: new Date().toISOString(),
      backend,
      model: {
        checkpoint: ckpt.path,
        method: ckpt.method,
        modelConfig: ckpt.modelConfig,
        numClasses: ckpt.numClasses,
        classNames: ckpt.classNames,
      },
      dataset: dataset.description,
      request,
      threat: plan.threat,
      eps: plan.eps,
      eps255: request.eps,
      examples: { ...examples, pick: request.examples.pick, seed: request.seed },
      naturalAccuracy,
      attacks: outcomes,
      worstCase,
      masking: masking ? { ...masking.report, examples: masking.examples } : null,
      corruptions,
      noEvidence,
      durationMs: performance.now() - started,
    });
    const file = path.join(options.outDir, EVALUATION_REPORT_FILE);
    await writeFileAtomic(file, `${JSON.stringify(report, null, 2)}\n`);

    const summary: Record<string, number> = { natural_accuracy: naturalAccuracy };
    for (const o of outcomes) summary[`robust_accuracy/${o.key}`] = o.robustAccuracy;
    if (worstCase) summary['robust_accuracy/worst_case'] = worstCase.robustAccuracy;
    if (corruptions) summary['corruption_accuracy/mean'] = corruptions.mean;
    for (const o of outcomes) {
      emit({
        type: 'log',
        level: o.warnings.length > 0 ? 'warn' : 'info',
        message: `${o.label}: ${(o.robustAccuracy * 100).toFixed(2)}%${o.warnings.length > 0 ? ` (${o.warnings.map((w) => w.message).join(' ')})` : ''}`,
      });
    }
    for (const flag of noEvidence) emit({ type: 'log', level: 'warn', message: flag.message });
    emit({ type: 'metrics', step: totalUnits, epoch: 1, values: summary });
    emit({
      type: 'done',
      step: totalUnits,
      epoch: 1,
      output: { kind: 'report', path: file },
      seconds: (performance.now() - started) / 1000,
      summary,
    });
    return report;
  } finally {
    model.dispose();
  }
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EvaluationCancelledError();
}

function checkCompatible(
  dataset: Dataset,
  imageSize: number,
  numClasses: number,
  classNames: string[],
  emit: (event: RunEvent) => void,
): void {
  if (dataset.imageSize !== imageSize) {
    throw new Error(`the model takes ${imageSize} px images; the dataset has ${dataset.imageSize} px images`);
  }
  if (dataset.numClasses !== numClasses) {
    throw new Error(`the model has ${numClasses} classes; the dataset has ${dataset.numClasses}`);
  }
  const differ = dataset.classNames.some((name, i) => classNames[i] !== undefined && classNames[i] !== name);
  if (differ) {
    emit({
      type: 'log',
      level: 'warn',
      message: `the model's class names (${classNames.slice(0, 4).join(', ')}, ...) differ from the dataset's (${dataset.classNames.slice(0, 4).join(', ')}, ...); labels are compared by index`,
    });
  }
}

function progressReporter(emit: RunEventSink, totalUnits: number): { advance(images: number): void } {
  const t0 = performance.now();
  let done = 0;
  let images = 0;
  return {
    advance(count: number) {
      done++;
      images += count;
      const seconds = Math.max((performance.now() - t0) / 1000, 1e-6);
      emit({
        type: 'progress',
        epoch: 1,
        epochs: 1,
        step: done,
        totalSteps: totalUnits,
        imagesPerSecond: images / seconds,
        etaSeconds: (seconds / done) * Math.max(totalUnits - done, 0),
      });
    },
  };
}

async function maskingChecks(
  model: EvaluatedClassifier,
  x: tf.Tensor4D,
  labels: Int32Array,
  plan: EvaluationPlan,
  seed: number,
  examples: EvaluatedExamples,
): Promise<{ report: GradientMaskingReport; examples: EvaluatedExamples }> {
  const zeroGradient = await zeroGradientCheck(model.classify, x, labels);
  const randomness = await randomnessCheck(model.classify, x);
  const unboundedEps = await unboundedEpsCheck(model.classify, x, labels, { threat: plan.threat, seed });
  return { report: maskingReport({ zeroGradient, randomness, unboundedEps }), examples };
}

/** Zero-gradient, randomness and unbounded-radius warnings belong next to every gradient-based number. */
function attachMaskingWarnings(
  outcomes: AttackOutcome[],
  tallies: AttackTally[],
  report: GradientMaskingReport | null,
): void {
  if (!report) return;
  const { zeroGradient, randomness, unboundedEps } = report;
  const warnings = maskingWarnings({ zeroGradient, randomness, unboundedEps });
  outcomes.forEach((o, i) => {
    const planned = tallies[i]?.planned;
    if (planned && isGradientAttack(planned)) o.warnings.push(...warnings);
  });
}

/**
 * The black-box check: Square must not beat the white-box attacks. From AutoAttack's stages when it
 * ran, else from a separate Square run against the white-box attacks within the threat model.
 */
function blackBoxFromOutcomes(
  outcomes: AttackOutcome[],
  tallies: AttackTally[],
  examples: number,
): { check: BlackBoxCheck; key: string } | null {
  const aaIndex = tallies.findIndex((t) => t.planned.kind === 'autoattack');
  const aa = tallies[aaIndex];
  if (aa) {
    const check = blackBoxCheck(aa.stages(examples));
    if (check) return { check, key: aa.planned.key };
  }
  const square = outcomes.find((_o, i) => {
    const p = tallies[i]?.planned;
    return p?.kind === 'single' && p.spec.attack === 'square';
  });
  if (!square) return null;
  const whiteBox = outcomes
    .filter((_o, i) => {
      const p = tallies[i]?.planned;
      return p?.kind === 'single' && p.spec.attack !== 'square' && p.inWorstCase;
    })
    .map((o) => o.robustAccuracy);
  const check = blackBoxCheck({ square: square.robustAccuracy, whiteBox });
  return check ? { check, key: square.key } : null;
}

/** Per example: robust only if every counted attack left it correctly classified. */
function worstCaseOf(tallies: AttackTally[], cleanCorrect: boolean[]): WorstCase | null {
  const counted = tallies.filter(
    (t) => t.planned.kind === 'autoattack' || (t.planned.kind === 'single' && t.planned.inWorstCase),
  );
  if (counted.length === 0) return null;
  const brokenBy = cleanCorrect.map((correct, i) => {
    if (!correct) return 'clean';
    const breaker = counted.find((t) => !(t.robustWithinEps[i] ?? true));
    return breaker ? breaker.planned.key : null;
  });
  return {
    robustAccuracy: brokenBy.filter((b) => b === null).length / Math.max(brokenBy.length, 1),
    attacks: counted.map((t) => t.planned.key),
    brokenBy,
    implementation: EVALUATION_VERSIONS.worstCase,
  };
}

function corruptionReportOf(
  plan: EvaluationPlan,
  correct: Map<string, number>,
  examples: EvaluatedExamples,
  seed: number,
  backend: string,
  durationMs: number,
): CorruptionReport {
  const corruptions = plan.corruptions;
  if (!corruptions) throw new Error('internal: no corruptions planned');
  const cells: CorruptionCell[] = [];
  const meanByType: Record<string, number> = {};
  for (const type of corruptions.types) {
    let sum = 0;
    for (const severity of corruptions.severities) {
      const accuracy = (correct.get(`${type}/${severity}`) ?? 0) / Math.max(examples.count, 1);
      cells.push({ type, severity, accuracy });
      sum += accuracy;
    }
    meanByType[type] = sum / corruptions.severities.length;
  }
  return {
    table: corruptions.table,
    implementation: EVALUATION_VERSIONS.corruptions,
    seed,
    examples,
    backend,
    cells,
    meanByType,
    mean: cells.reduce((s, c) => s + c.accuracy, 0) / Math.max(cells.length, 1),
    durationMs,
  };
}
