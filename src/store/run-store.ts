import { lastKeptStep, type RunEvent } from '@shared/run-events';
import type {
  Artifact,
  ArtifactKind,
  Evaluation,
  Experiment,
  LogEntry,
  LogLevel,
  MetricSeries,
  MetricSeriesQuery,
  NewArtifact,
  NewEvaluation,
  NewExperiment,
  NewRun,
  Run,
  RunFilter,
  RunStatus,
  TagCount,
} from '@shared/store-types';
import { ArtifactsTable } from './artifacts';
import { openDatabase, type OpenDatabaseOptions, type SqliteDatabase } from './database';
import { StoreError } from './errors';
import { MetricsTable } from './metrics';
import type { Clock } from './rows';
import { RunsTable } from './runs';

export { newRunId } from './runs';

export interface RunStoreOptions extends OpenDatabaseOptions {
  /** Milliseconds since the epoch; tests fix it. */
  now?: Clock;
}

/** The run-row updates that events make, prepared once per store. */
function prepare(db: SqliteDatabase) {
  return {
    touch: db.prepare('UPDATE runs SET last_event_at = ? WHERE id = ?'),
    progress: db.prepare(
      `UPDATE runs SET step = ?, total_steps = ?, epoch = ?, epochs = ?, images_per_second = ?, eta_seconds = ?
       WHERE id = ?`,
    ),
    started: db.prepare(
      `UPDATE runs SET backend = ?, engine = ?, out_dir = ?, step = ?, epoch = ?, total_steps = ?, epochs = ?,
         started_at = coalesce(started_at, ?)
       WHERE id = ?`,
    ),
    lastCheckpoint: db.prepare('UPDATE runs SET last_checkpoint = ? WHERE id = ?'),
    // A training run's final checkpoint is its last one; other kinds' outputs leave last_checkpoint alone.
    done: db.prepare(
      `UPDATE runs SET step = ?, epoch = ?, output_kind = ?, output_path = ?,
         last_checkpoint = coalesce(?, last_checkpoint), summary = ?, eta_seconds = NULL
       WHERE id = ?`,
    ),
    failed: db.prepare(
      'UPDATE runs SET step = coalesce(?, step), last_checkpoint = coalesce(?, last_checkpoint) WHERE id = ?',
    ),
  };
}

/**
 * The experiment store: experiments, runs and everything a run produced (metrics, artifacts,
 * evaluations, logs), plus the user's tags and notes. Every write is one transaction. The tables
 * live in runs.ts, metrics.ts and artifacts.ts; this facade records run events across them.
 */
export class RunStore {
  readonly db: SqliteDatabase;
  private readonly runs: RunsTable;
  private readonly metrics: MetricsTable;
  private readonly artifacts: ArtifactsTable;
  private readonly now: Clock;
  private readonly stmt: ReturnType<typeof prepare>;
  private readonly recordOne: (runId: string, event: RunEvent) => void;
  private readonly recordMany: (runId: string, events: readonly RunEvent[]) => void;

  static open(file: string, options: RunStoreOptions = {}): RunStore {
    return new RunStore(openDatabase(file, options), options);
  }

  /** Wrap an open, migrated database (see openDatabase). */
  constructor(db: SqliteDatabase, options: Pick<RunStoreOptions, 'now'> = {}) {
    this.db = db;
    this.now = options.now ?? Date.now;
    this.stmt = prepare(db);
    this.artifacts = new ArtifactsTable(db, this.now);
    this.metrics = new MetricsTable(db);
    this.runs = new RunsTable(db, this.now, this.artifacts);
    // IMMEDIATE: take the write lock at BEGIN, so a concurrent writer makes us wait (busy_timeout)
    // rather than fail half-way.
    const one = db.transaction((runId: string, event: RunEvent) => this.apply(runId, event, this.now()));
    const many = db.transaction((runId: string, events: readonly RunEvent[]) => {
      const now = this.now();
      for (const event of events) this.apply(runId, event, now);
    });
    this.recordOne = (runId, event) => one.immediate(runId, event);
    this.recordMany = (runId, events) => many.immediate(runId, events);
  }

  close(): void {
    this.db.close();
  }

  // ---- experiments and runs (runs.ts) ------------------------------------------------------------------

  createExperiment(input: NewExperiment): Experiment {
    return this.runs.createExperiment(input);
  }

  listExperiments(): Experiment[] {
    return this.runs.listExperiments();
  }

  getExperiment(id: number): Experiment | null {
    return this.runs.getExperiment(id);
  }

  /** The experiment runs go to when none is named; created when first needed. */
  defaultExperiment(): Experiment {
    return this.runs.defaultExperiment();
  }

  /** A new run, queued. Its parent is the run owning the checkpoint its config names (see lineage.ts). */
  createRun(input: NewRun): Run {
    return this.runs.createRun(input);
  }

  getRun(id: string): Run | null {
    return this.runs.getRun(id);
  }

  /** The run whose id is `idOrPrefix` or the only one starting with it (for typed ids in the CLI). */
  resolveRunId(idOrPrefix: string): string {
    return this.runs.resolveRunId(idOrPrefix);
  }

  listRuns(filter: RunFilter = {}): Run[] {
    return this.runs.listRuns(filter);
  }

  renameRun(id: string, name: string): Run {
    return this.runs.renameRun(id, name);
  }

  /** Move a run to `to`, if that is legal (see RUN_TRANSITIONS); otherwise StoreError 'invalid-transition'. */
  updateRunStatus(id: string, to: RunStatus, details: { pid?: number; error?: string; reason?: string } = {}): Run {
    return this.runs.updateRunStatus(id, to, details);
  }

  /** The engine process of a running run, as the engine reports it (what start-up recovery checks). */
  setEnginePid(id: string, pid: number): void {
    this.runs.setEnginePid(id, pid);
  }

  /** At start-up: runs still marked running become 'interrupted', but those `stillRunning` keeps. */
  markInterruptedRuns(stillRunning?: (run: Run) => boolean): Run[] {
    return this.runs.markInterruptedRuns(stillRunning);
  }

  /** Delete a run and everything recorded about it. Returns its output folder, for the caller to remove. */
  deleteRun(id: string): { outDir: string | null } {
    return this.runs.deleteRun(id);
  }

  addTag(runId: string, tag: string): Run {
    return this.runs.addTag(runId, tag);
  }

  removeTag(runId: string, tag: string): Run {
    return this.runs.removeTag(runId, tag);
  }

  /** Every tag in use, with how many runs carry it. */
  listTags(): TagCount[] {
    return this.runs.listTags();
  }

  /** Set a run's note; an empty text removes it. */
  setNote(runId: string, text: string): Run {
    return this.runs.setNote(runId, text);
  }

  // ---- metrics (metrics.ts) -------------------------------------------------------------------------------

  /** The metric keys a run has recorded, sorted. */
  listMetricKeys(runId: string): string[] {
    return this.metrics.listKeys(runId);
  }

  /** One series per (run, key) pair, run-major, downsampled to at most `maxPoints` points each. */
  getMetricSeries(runIds: readonly string[], keys: readonly string[], query: MetricSeriesQuery = {}): MetricSeries[] {
    return this.metrics.series(runIds, keys, query);
  }

  // ---- artifacts, evaluations, logs (artifacts.ts) ------------------------------------------------------------

  /** Record a file a run produced outside its events (an export, a report, a plot). */
  addArtifact(runId: string, input: NewArtifact): Artifact {
    this.runs.requireRun(runId);
    return this.artifacts.add(runId, input);
  }

  listArtifacts(runId: string, kind?: ArtifactKind): Artifact[] {
    return this.artifacts.list(runId, kind);
  }

  addEvaluation(runId: string, input: NewEvaluation): Evaluation {
    this.runs.requireRun(runId);
    return this.artifacts.addEvaluation(runId, input);
  }

  /** The evaluations a run made. */
  listEvaluations(runId: string): Evaluation[] {
    return this.artifacts.listEvaluations(runId);
  }

  /** The evaluations of a model: made by the model's run itself, or by runs whose parent it is. */
  listEvaluationsOfModel(modelRunId: string): Evaluation[] {
    return this.artifacts.listEvaluationsOfModel(modelRunId);
  }

  /** A run's log, oldest first; `afterId` fetches only entries newer than one seen. */
  listLogs(runId: string, options: { afterId?: number; limit?: number; minLevel?: LogLevel } = {}): LogEntry[] {
    return this.artifacts.listLogs(runId, options);
  }

  // ---- events ---------------------------------------------------------------------------------------

  /** Store one event of a run, atomically: all its rows and run fields, or nothing. */
  recordEvent(runId: string, event: RunEvent): void {
    this.recordOne(runId, event);
  }

  /** Store several events of a run in one transaction (for a job runner that batches). */
  recordEvents(runId: string, events: readonly RunEvent[]): void {
    this.recordMany(runId, events);
  }

  private apply(runId: string, event: RunEvent, now: number): void {
    if (this.stmt.touch.run(now, runId).changes === 0) this.runs.notFound(runId);
    const s = this.stmt;
    switch (event.type) {
      case 'metrics':
        this.metrics.record(runId, event.step, event.values, now);
        return;
      case 'progress':
        s.progress.run(
          event.step,
          event.totalSteps,
          event.epoch,
          event.epochs,
          event.imagesPerSecond,
          event.etaSeconds,
          runId,
        );
        return;
      case 'started': {
        if (this.runs.statusOf(runId) !== 'running') this.runs.transition(runId, 'running', now, {});
        s.started.run(
          event.backend,
          event.engine ? JSON.stringify(event.engine) : null,
          event.outDir,
          event.step,
          event.epoch,
          event.totalSteps,
          Math.ceil(event.totalSteps / event.stepsPerEpoch),
          now,
          runId,
        );
        const keep = lastKeptStep(event);
        const dropped = this.dropLaterAttempt(runId, keep);
        s.lastCheckpoint.run(event.resumedFrom, runId);
        const how = event.resumedFrom === null ? 'started' : `resumed from ${event.resumedFrom}`;
        const note =
          dropped === 0
            ? ''
            : `; ${dropped} metric points an earlier attempt stored after step ${Math.max(keep, 0)} were dropped`;
        this.artifacts.log(
          runId,
          'info',
          `${event.runKind} ${how} at step ${event.step} on the ${event.backend} backend${note}`,
          now,
        );
        return;
      }
      case 'preview':
        this.artifacts.record(
          runId,
          'preview',
          event.dir,
          event.step,
          {
            epoch: event.epoch,
            files: event.files,
            count: event.count,
            imageSize: event.imageSize,
            perturbationScale: event.perturbationScale,
          },
          now,
        );
        return;
      case 'checkpoint':
        this.artifacts.record(runId, 'checkpoint', event.path, event.step, { epoch: event.epoch }, now);
        s.lastCheckpoint.run(event.path, runId);
        return;
      case 'log':
        this.artifacts.log(runId, event.level, event.message, now);
        return;
      case 'done':
        this.runs.transition(runId, 'done', now, {});
        if (event.output !== null) {
          this.artifacts.recordFinalOutput(runId, event.output, event.step, event.epoch, now);
        }
        s.done.run(
          event.step,
          event.epoch,
          event.output?.kind ?? null,
          event.output?.path ?? null,
          event.output?.kind === 'checkpoint' ? event.output.path : null,
          JSON.stringify(event.summary),
          runId,
        );
        this.artifacts.log(runId, 'info', `done at step ${event.step} in ${event.seconds.toFixed(1)} s`, now);
        return;
      case 'failed':
        this.runs.transition(runId, 'failed', now, { error: event.message, cause: event.cause ?? 'run' });
        s.failed.run(event.step, event.lastCheckpoint, runId);
        return;
      default: {
        const unknown: never = event;
        throw new StoreError('invalid-input', `Unknown run event ${JSON.stringify(unknown)}.`);
      }
    }
  }

  /**
   * A run (re)starts and keeps what it recorded up to step `keep` (see lastKeptStep): what an earlier
   * attempt stored after it (metric points, previews, checkpoints) goes, or charts would splice two
   * attempts. Inside the caller's transaction, with the restart. Returns the metric points dropped.
   */
  private dropLaterAttempt(runId: string, keep: number): number {
    this.artifacts.dropStepArtifactsAfter(runId, keep);
    return this.metrics.dropAfter(runId, keep);
  }
}
