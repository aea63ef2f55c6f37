/** Rows as SQLite returns them, and their mapping to the shared objects: the only place that knows both. */
import type { z } from 'zod';
import type { FailureCause, RunOutput } from '@shared/run-events';
import { Artifact, Evaluation, Experiment, LogEntry, Run } from '@shared/store-types';
import { StoreError } from './errors';

export interface ExperimentRow {
  id: number;
  name: string;
  description: string;
  created_at: number;
  run_count: number;
}

export interface RunRow {
  id: string;
  experiment_id: number;
  name: string;
  kind: string;
  status: string;
  config: string;
  parent_run_id: string | null;
  out_dir: string | null;
  backend: string | null;
  engine: string | null;
  pid: number | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  last_event_at: number | null;
  step: number | null;
  total_steps: number | null;
  epoch: number | null;
  epochs: number | null;
  images_per_second: number | null;
  eta_seconds: number | null;
  error: string | null;
  error_cause: FailureCause | null;
  last_checkpoint: string | null;
  output_kind: RunOutput['kind'] | null;
  output_path: string | null;
  summary: string | null;
  tags: string;
  note: string | null;
}

export interface ArtifactRow {
  id: number;
  run_id: string;
  kind: string;
  path: string;
  step: number | null;
  metadata: string;
  created_at: number;
}

export interface EvaluationRow {
  id: number;
  run_id: string;
  model_checkpoint: string;
  protocol: string;
  results: string;
  created_at: number;
}

export interface LogRow {
  id: number;
  run_id: string;
  time: number;
  level: string;
  message: string;
}

export function toExperiment(row: ExperimentRow): Experiment {
  return Experiment.parse({
    id: row.id,
    name: row.name,
    description: row.description,
    createdAt: row.created_at,
    runCount: row.run_count,
  });
}

export function toRun(row: RunRow): Run {
  return Run.parse({
    id: row.id,
    experimentId: row.experiment_id,
    name: row.name,
    kind: row.kind,
    status: row.status,
    config: JSON.parse(row.config),
    parentRunId: row.parent_run_id,
    outDir: row.out_dir,
    backend: row.backend,
    engine: row.engine === null ? null : (JSON.parse(row.engine) as unknown),
    pid: row.pid,
    createdAt: row.created_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    lastEventAt: row.last_event_at,
    step: row.step,
    totalSteps: row.total_steps,
    epoch: row.epoch,
    epochs: row.epochs,
    imagesPerSecond: row.images_per_second,
    etaSeconds: row.eta_seconds,
    error: row.error,
    errorCause: row.error_cause,
    lastCheckpoint: row.last_checkpoint,
    output: row.output_kind === null ? null : { kind: row.output_kind, path: row.output_path },
    summary: row.summary === null ? null : JSON.parse(row.summary),
    tags: JSON.parse(row.tags),
    note: row.note,
  });
}

export function toArtifact(row: ArtifactRow): Artifact {
  return Artifact.parse({
    id: row.id,
    runId: row.run_id,
    kind: row.kind,
    path: row.path,
    step: row.step,
    metadata: JSON.parse(row.metadata),
    createdAt: row.created_at,
  });
}

export function toEvaluation(row: EvaluationRow): Evaluation {
  return Evaluation.parse({
    id: row.id,
    runId: row.run_id,
    modelCheckpoint: row.model_checkpoint,
    protocol: JSON.parse(row.protocol),
    results: JSON.parse(row.results),
    createdAt: row.created_at,
  });
}

export function toLogEntry(row: LogRow): LogEntry {
  return LogEntry.parse({ id: row.id, runId: row.run_id, time: row.time, level: row.level, message: row.message });
}

export const RUN_SELECT = `
  SELECT r.*,
    (SELECT json_group_array(tag) FROM (SELECT tag FROM tags WHERE run_id = r.id ORDER BY tag)) AS tags,
    (SELECT text FROM notes WHERE run_id = r.id) AS note
  FROM runs r`;

/** Milliseconds since the epoch; tests fix it. */
export type Clock = () => number;

export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new StoreError('invalid-input', `Invalid input: ${result.error.message}`);
  return result.data;
}
