import { BUILTIN_DEFAULT_SIZE } from '@shared/dataset-config';
import type { JobKind } from '@shared/engine-protocol';
import type { Run } from '@shared/store-types';
import type { RunBackend } from '@shared/system';
import { isRecord } from '@shared/unknown-value';
import { gridShape, LandscapeGrid } from '@shared/landscape';
import { modelLabel } from '../run-info';

/**
 * The time a run will take, before Start: its work (images it trains on, attacked examples it
 * evaluates, images a landscape forwards) divided by the throughput this machine measured on the same
 * kind of run with the same model and backend (the finished runs' own figures). No measurement: no
 * estimate, and the form offers a short measuring run.
 */

const CIFAR10_SIZE = { train: 50_000, test: 10_000 };

/** A finite number, or null (a form's field may hold anything while being edited). */
export function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
/** A plain object, or null. */
export function record(value: unknown): Record<string, unknown> | null {
  return isRecord(value) ? value : null;
}

/** Images in the config's dataset split, where the config alone says (not for image folders). */
export function datasetSizeOf(config: Record<string, unknown>): number | null {
  const dataset = record(config.dataset);
  if (!dataset) return null;
  const which = dataset.split === 'test' ? 'test' : 'train';
  if (dataset.kind === 'builtin') return num(dataset.size) ?? BUILTIN_DEFAULT_SIZE[which];
  if (dataset.kind === 'cifar10') return CIFAR10_SIZE[which];
  return null;
}

/** What a kind's work is counted in, for "measured X <unit>/s". */
export const WORK_UNITS: Record<JobKind, string> = {
  pretrain: 'images/s',
  finetune: 'images/s',
  evaluate: 'attacked examples/s',
  landscape: 'images/s',
};

/** The work of a run: training images × epochs; examples × attacks; grid points × examples. */
export function workOf(kind: JobKind, config: Record<string, unknown>): number | null {
  const size = datasetSizeOf(config);
  if (kind === 'pretrain' || kind === 'finetune') {
    const epochs = num(config.epochs);
    const batch = num(config.batchSize);
    // Each epoch runs its whole batches (the last partial batch is dropped).
    return size !== null && epochs !== null && batch ? Math.floor(size / batch) * batch * epochs : null;
  }
  if (kind === 'evaluate') {
    const requested = num(record(config.examples)?.count);
    const attacks = Array.isArray(config.attacks) ? config.attacks.length : 0;
    if (requested === null || attacks === 0) return null;
    return (size !== null ? Math.min(requested, size) : requested) * attacks;
  }
  const grid = LandscapeGrid.safeParse(config.grid);
  const examples = num(config.examples);
  if (!grid.success || examples === null) return null;
  const { cols, rows } = gridShape(grid.data);
  return cols * rows * (size !== null ? Math.min(examples, size) : examples);
}

/** What makes two runs' throughputs comparable: kind, backend, model and image size. */
function similar(kind: JobKind, config: Record<string, unknown>, backend: RunBackend, run: Run): boolean {
  const imageSize = (c: Record<string, unknown>) => num(record(c.dataset)?.imageSize);
  return (
    run.kind === kind &&
    run.status === 'done' &&
    run.backend === backend &&
    modelLabel(run.config) === modelLabel(config) &&
    imageSize(run.config) === imageSize(config)
  );
}

/** A finished run's throughput: the engine's images/s for training, its work over its wall time otherwise. */
export function measuredRate(run: Run): number | null {
  if (run.kind === 'pretrain' || run.kind === 'finetune') return run.imagesPerSecond;
  const work = workOf(run.kind, run.config);
  if (work === null || run.startedAt === null || run.endedAt === null || run.endedAt <= run.startedAt) return null;
  return work / ((run.endedAt - run.startedAt) / 1000);
}

export interface Estimate {
  seconds: number;
  /** The median throughput of the similar runs, in WORK_UNITS[kind]. */
  rate: number;
  backend: RunBackend;
  /** How many finished runs it is measured on. */
  runs: number;
}

/** The estimate from the latest (up to 5) similar finished runs, or null without work or measurement. */
export function estimateRun(
  kind: JobKind,
  config: Record<string, unknown>,
  backend: RunBackend,
  finished: Run[],
): Estimate | null {
  const work = workOf(kind, config);
  if (work === null) return null;
  const rates = finished
    .filter((run) => similar(kind, config, backend, run))
    .sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0))
    .slice(0, 5)
    .flatMap((run) => {
      const rate = measuredRate(run);
      return rate !== null && rate > 0 ? [rate] : [];
    })
    .sort((a, b) => a - b);
  if (rates.length === 0) return null;
  const middle = rates.length / 2;
  const rate =
    rates.length % 2 === 1 ? (rates[Math.floor(middle)] ?? 0) : ((rates[middle - 1] ?? 0) + (rates[middle] ?? 0)) / 2;
  return { seconds: work / rate, rate, backend, runs: rates.length };
}

/** "about 12 min", "about 40 s", "about 2.5 h". */
export function formatEstimate(seconds: number): string {
  if (seconds < 90) return `about ${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} min`;
  return `about ${(seconds / 3600).toFixed(1)} h`;
}

/**
 * A short run of the same kind, model and backend that measures the throughput: one epoch of four
 * batches for training on the built-in set, 32 examples for an evaluation or a landscape. Null where
 * the work cannot be shrunk from the config alone (CIFAR-10 or image folders for training).
 */
export function measuringConfig(kind: JobKind, config: Record<string, unknown>): Record<string, unknown> | null {
  if (kind === 'pretrain' || kind === 'finetune') {
    const dataset = record(config.dataset);
    const batch = num(config.batchSize);
    if (dataset?.kind !== 'builtin' || !batch) return null;
    const measured: Record<string, unknown> = { ...config, dataset: { ...dataset, size: batch * 4 }, epochs: 1 };
    if (kind === 'finetune') measured.heldOut = { ...record(config.heldOut), size: 0 };
    return measured;
  }
  if (kind === 'evaluate') {
    const examples = record(config.examples) ?? {};
    return { ...config, examples: { ...examples, count: Math.min(num(examples.count) ?? 32, 32) } };
  }
  return { ...config, examples: Math.min(num(config.examples) ?? 32, 32) };
}
