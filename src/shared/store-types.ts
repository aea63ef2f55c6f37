import { z } from 'zod';
import { RunBackend } from './system';
import { FailureCause, RunOutput, TorchEngineInfo } from './run-events';

/**
 * The experiment store's objects (src/store) as the rest of the app sees them: runs, their metrics,
 * artifacts, evaluations, logs, tags and notes. They cross into the renderer through the app API,
 * so they are zod schemas here. Times are milliseconds since the Unix epoch.
 */

/** What a run does. `landscape` computes a loss landscape around a trained model. */
export const StoreRunKind = z.enum(['pretrain', 'finetune', 'evaluate', 'landscape']);
export type StoreRunKind = z.infer<typeof StoreRunKind>;

/**
 * Where a run is in its life. `interrupted`: it was running when the app or machine stopped (found at
 * the next start-up); it can be resumed from its last checkpoint, like a failed or cancelled run.
 */
export const RunStatus = z.enum(['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted']);
export type RunStatus = z.infer<typeof RunStatus>;

/** A run's configuration as it was submitted (the engine's own config schemas validate it). */
export const JsonObject = z.record(z.string(), z.unknown());
export type JsonObject = z.infer<typeof JsonObject>;

export const Experiment = z.object({
  id: z.number().int().positive(),
  name: z.string().min(1),
  description: z.string(),
  createdAt: z.number(),
  runCount: z.number().int().nonnegative(),
});
export type Experiment = z.infer<typeof Experiment>;

export const NewExperiment = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().default(''),
});
export type NewExperiment = z.input<typeof NewExperiment>;

export const Run = z.object({
  id: z.string(),
  experimentId: z.number().int().positive(),
  name: z.string(),
  kind: StoreRunKind,
  status: RunStatus,
  config: JsonObject,
  /**
   * The run owning the checkpoint this run's config starts from: a fine-tuning run's pre-training run,
   * an evaluation's (or landscape's) model run. Derived by the store from the config, never given.
   */
  parentRunId: z.string().nullable(),
  outDir: z.string().nullable(),
  backend: RunBackend.nullable(),
  /** The PyTorch engine's processes, devices and precision (its started event); null or absent for tfjs runs. */
  engine: TorchEngineInfo.nullish(),
  /** The engine process while the run is active. */
  pid: z.number().int().nullable(),
  createdAt: z.number(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
  /** When the store last heard from the run (any event). */
  lastEventAt: z.number().nullable(),
  step: z.number().int().nullable(),
  totalSteps: z.number().int().nullable(),
  epoch: z.number().int().nullable(),
  epochs: z.number().int().nullable(),
  imagesPerSecond: z.number().nullable(),
  etaSeconds: z.number().nullable(),
  error: z.string().nullable(),
  /** A failed run's cause (config: offer Duplicate and edit, not Resume); null otherwise. */
  errorCause: FailureCause.nullable(),
  /** A training run's last good checkpoint (what Resume continues from); null for other kinds. */
  lastCheckpoint: z.string().nullable(),
  /** What the run produced, from its `done` event: a final checkpoint, a report or a landscape. */
  output: RunOutput.nullable(),
  /** The `done` event's summary (final metrics). */
  summary: z.record(z.string(), z.number()).nullable(),
  tags: z.array(z.string()),
  note: z.string().nullable(),
});
export type Run = z.infer<typeof Run>;

export const NewRun = z.object({
  /** Omitted: a fresh 12-character id. */
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{3,63}$/)
    .optional(),
  /** Omitted: the "Default" experiment (created when first needed). */
  experimentId: z.number().int().positive().optional(),
  name: z.string().trim().min(1).max(200),
  kind: StoreRunKind,
  config: JsonObject.default({}),
  outDir: z.string().nullable().default(null),
  backend: RunBackend.nullable().default(null),
});
export type NewRun = z.input<typeof NewRun>;

export const RunSortField = z.enum(['createdAt', 'startedAt', 'endedAt', 'name', 'status', 'kind', 'step']);
export type RunSortField = z.infer<typeof RunSortField>;

export const RunFilter = z.object({
  status: z.union([RunStatus, z.array(RunStatus)]).optional(),
  kind: z.union([StoreRunKind, z.array(StoreRunKind)]).optional(),
  experimentId: z.number().int().positive().optional(),
  parentRunId: z.string().optional(),
  /** Runs carrying this tag. */
  tag: z.string().optional(),
  /** Case-insensitive substring of the id, name, note, tags or config JSON. */
  text: z.string().optional(),
  /** A field, or `summary:<key>` to sort by a final metric (runs without it last). */
  sort: z.union([RunSortField, z.string().regex(/^summary:.+$/)]).default('createdAt'),
  direction: z.enum(['asc', 'desc']).default('desc'),
  limit: z.number().int().positive().max(10_000).default(1000),
  offset: z.number().int().nonnegative().default(0),
});
export type RunFilter = z.input<typeof RunFilter>;

/**
 * One metric of one run, in step order. `values[i]` is null where the engine reported a non-finite
 * number (NaN or +-Infinity: a diverged loss), so the point is kept and can be shown.
 */
export const MetricSeries = z.object({
  runId: z.string(),
  key: z.string(),
  steps: z.array(z.number()),
  values: z.array(z.number().nullable()),
  wallTimes: z.array(z.number()),
  /** Points stored for this run and key within the requested step range. */
  total: z.number().int().nonnegative(),
  downsampled: z.boolean(),
});
export type MetricSeries = z.infer<typeof MetricSeries>;

export const MetricSeriesQuery = z.object({
  /**
   * Upper bound on the points returned per series. Above it, the series keeps its first and last
   * point and the minimum and maximum of each of (maxPoints - 2) / 2 equal step intervals; a bucket
   * holding non-finite values also keeps its first one (so may add one point).
   */
  maxPoints: z.number().int().min(4).default(2000),
  /** Inclusive step range (for zooming in, or fetching what arrived after a step). */
  fromStep: z.number().int().optional(),
  toStep: z.number().int().optional(),
});
export type MetricSeriesQuery = z.input<typeof MetricSeriesQuery>;

export const ArtifactKind = z.enum(['checkpoint', 'preview', 'export', 'report', 'plot']);
export type ArtifactKind = z.infer<typeof ArtifactKind>;

export const Artifact = z.object({
  id: z.number().int().positive(),
  runId: z.string(),
  kind: ArtifactKind,
  /** A file, or for a preview snapshot the directory holding its strips (metadata.files). */
  path: z.string(),
  step: z.number().int().nullable(),
  metadata: JsonObject,
  createdAt: z.number(),
});
export type Artifact = z.infer<typeof Artifact>;

export const NewArtifact = z.object({
  kind: ArtifactKind,
  path: z.string().min(1),
  step: z.number().int().nonnegative().nullable().default(null),
  metadata: JsonObject.default({}),
});
export type NewArtifact = z.input<typeof NewArtifact>;

export const Evaluation = z.object({
  id: z.number().int().positive(),
  /** The run that evaluated (an `evaluate` run, or a fine-tuning run's final evaluation). */
  runId: z.string(),
  modelCheckpoint: z.string(),
  /** Threat model, eps, attacks, steps, restarts, seed, which examples (spec section 6). */
  protocol: JsonObject,
  results: JsonObject,
  createdAt: z.number(),
});
export type Evaluation = z.infer<typeof Evaluation>;

export const NewEvaluation = z.object({
  modelCheckpoint: z.string().min(1),
  protocol: JsonObject,
  results: JsonObject,
});
export type NewEvaluation = z.input<typeof NewEvaluation>;

export const LogLevel = z.enum(['info', 'warn', 'error']);
export type LogLevel = z.infer<typeof LogLevel>;

export const LogEntry = z.object({
  /** Increasing; pass the last one seen as `afterId` to fetch only newer entries. */
  id: z.number().int().positive(),
  runId: z.string(),
  time: z.number(),
  level: LogLevel,
  message: z.string(),
});
export type LogEntry = z.infer<typeof LogEntry>;

export const TagCount = z.object({ tag: z.string(), count: z.number().int().positive() });
export type TagCount = z.infer<typeof TagCount>;

/** A tag: trimmed, 1-64 characters, no line breaks. */
export const Tag = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\r\n]+$/);
