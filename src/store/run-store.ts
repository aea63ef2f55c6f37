import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { lastKeptStep, type FailureCause, type RunEvent } from '../shared/run-events';
import {
  Artifact,
  Evaluation,
  Experiment,
  LogEntry,
  MetricSeriesQuery,
  NewArtifact,
  NewEvaluation,
  NewExperiment,
  NewRun,
  Run,
  RunFilter,
  Tag,
  type ArtifactKind,
  type LogLevel,
  type MetricSeries,
  type RunStatus,
  type TagCount,
} from '../shared/store-types';
import { openDatabase, type OpenDatabaseOptions, type SqliteDatabase } from './database';
import { downsampleRows, type MetricRow } from './downsample';
import { StoreError, sqliteCode } from './errors';
import { checkpointOwners, deriveParentRunId } from './lineage';
import { canTransition, transitionRefusal } from './run-status';

export interface RunStoreOptions extends OpenDatabaseOptions {
  /** Milliseconds since the epoch; tests fix it. */
  now?: () => number;
}

/** Decides, at start-up, whether a run the store thinks is running really still is (e.g. owned by a live CLI). */
export type StillRunning = (run: Run) => boolean;

const DEFAULT_EXPERIMENT = 'Default';

// ---------------------------------------------------------------------------------------------------
// Rows as SQLite returns them, and their mapping to the shared objects: the only place that knows both.

interface ExperimentRow {
  id: number;
  name: string;
  description: string;
  created_at: number;
  run_count: number;
}

interface RunRow {
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
  summary: string | null;
  tags: string;
  note: string | null;
}

interface ArtifactRow {
  id: number;
  run_id: string;
  kind: string;
  path: string;
  step: number | null;
  metadata: string;
  created_at: number;
}

interface EvaluationRow {
  id: number;
  run_id: string;
  model_checkpoint: string;
  protocol: string;
  results: string;
  created_at: number;
}

interface LogRow {
  id: number;
  run_id: string;
  time: number;
  level: string;
  message: string;
}

function toExperiment(row: ExperimentRow): Experiment {
  return Experiment.parse({
    id: row.id,
    name: row.name,
    description: row.description,
    createdAt: row.created_at,
    runCount: row.run_count,
  });
}

function toRun(row: RunRow): Run {
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
    summary: row.summary === null ? null : JSON.parse(row.summary),
    tags: JSON.parse(row.tags),
    note: row.note,
  });
}

function toArtifact(row: ArtifactRow): Artifact {
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

function toEvaluation(row: EvaluationRow): Evaluation {
  return Evaluation.parse({
    id: row.id,
    runId: row.run_id,
    modelCheckpoint: row.model_checkpoint,
    protocol: JSON.parse(row.protocol),
    results: JSON.parse(row.results),
    createdAt: row.created_at,
  });
}

function toLogEntry(row: LogRow): LogEntry {
  return LogEntry.parse({ id: row.id, runId: row.run_id, time: row.time, level: row.level, message: row.message });
}

const RUN_SELECT = `
  SELECT r.*,
    (SELECT json_group_array(tag) FROM (SELECT tag FROM tags WHERE run_id = r.id ORDER BY tag)) AS tags,
    (SELECT text FROM notes WHERE run_id = r.id) AS note
  FROM runs r`;

const SORT_COLUMNS = {
  createdAt: 'r.created_at',
  startedAt: 'r.started_at',
  endedAt: 'r.ended_at',
  name: 'r.name COLLATE NOCASE',
  status: 'r.status',
  kind: 'r.kind',
  step: 'r.step',
} as const;

/** 12 characters from a 32-letter alphabet (60 random bits): short enough to type, unique in practice. */
export function newRunId(): string {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  return Array.from(randomBytes(12), (byte) => alphabet.charAt(byte & 31)).join('');
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** SQLite stores NaN as NULL anyway; +-Infinity would not survive JSON on its way to the renderer. */
function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

type Statements = ReturnType<typeof prepareStatements>;

/** The statements of the hot paths, prepared once per store. */
function prepareStatements(db: SqliteDatabase) {
  return {
    runById: db.prepare(`${RUN_SELECT} WHERE r.id = ?`),
    statusOf: db.prepare('SELECT status FROM runs WHERE id = ?').pluck(),
    touch: db.prepare('UPDATE runs SET last_event_at = ? WHERE id = ?'),
    insertMetric: db.prepare(
      `INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time`,
    ),
    progress: db.prepare(
      `UPDATE runs SET step = ?, total_steps = ?, epoch = ?, epochs = ?, images_per_second = ?, eta_seconds = ?
       WHERE id = ?`,
    ),
    insertArtifact: db.prepare(
      `INSERT INTO artifacts (run_id, kind, path, step, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id, kind, path, step) DO NOTHING`,
    ),
    insertLog: db.prepare('INSERT INTO logs (run_id, time, level, message) VALUES (?, ?, ?, ?)'),
    seriesStats: db.prepare(
      `SELECT count(*) AS n, min(step) AS first, max(step) AS last FROM metrics
       WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ?`,
    ),
    seriesRows: db
      .prepare(
        `SELECT step, value, wall_time FROM metrics
         WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ? ORDER BY step`,
      )
      .raw(true),
    // The final checkpoint may have been reported already by a checkpoint event: mark it final.
    finalCheckpoint: db.prepare(
      `INSERT INTO artifacts (run_id, kind, path, step, metadata, created_at)
       VALUES (?, 'checkpoint', ?, ?, json_object('epoch', ?, 'final', json('true')), ?)
       ON CONFLICT (run_id, kind, path, step) DO UPDATE SET metadata = json_set(metadata, '$.final', json('true'))`,
    ),
    lastCheckpoint: db.prepare('UPDATE runs SET last_checkpoint = ? WHERE id = ?'),
    dropMetricsAfter: db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?'),
    dropStepArtifactsAfter: db.prepare(
      "DELETE FROM artifacts WHERE run_id = ? AND kind IN ('preview', 'checkpoint') AND step > ?",
    ),
  };
}

/**
 * The experiment store: experiments, runs and everything a run produced (metrics, artifacts,
 * evaluations, logs), plus the user's tags and notes. Every write is one transaction.
 */
export class RunStore {
  readonly db: SqliteDatabase;
  private readonly now: () => number;
  private readonly stmt: Statements;
  private readonly recordOne: (runId: string, event: RunEvent) => void;
  private readonly recordMany: (runId: string, events: readonly RunEvent[]) => void;

  static open(file: string, options: RunStoreOptions = {}): RunStore {
    return new RunStore(openDatabase(file, options), options);
  }

  /** Wrap an open, migrated database (see openDatabase). */
  constructor(db: SqliteDatabase, options: Pick<RunStoreOptions, 'now'> = {}) {
    this.db = db;
    this.now = options.now ?? Date.now;
    this.stmt = prepareStatements(db);
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

  // ---- experiments ----------------------------------------------------------------------------------

  createExperiment(input: NewExperiment): Experiment {
    const { name, description } = parseInput(NewExperiment, input);
    try {
      const id = this.db
        .prepare('INSERT INTO experiments (name, description, created_at) VALUES (?, ?, ?)')
        .run(name, description, this.now()).lastInsertRowid;
      return this.requireExperiment(Number(id));
    } catch (error) {
      if (sqliteCode(error) === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new StoreError('conflict', `An experiment named "${name}" exists already: choose another name.`);
      }
      throw error;
    }
  }

  listExperiments(): Experiment[] {
    const rows = this.db
      .prepare(
        `SELECT e.*, (SELECT count(*) FROM runs WHERE experiment_id = e.id) AS run_count
         FROM experiments e ORDER BY e.created_at, e.id`,
      )
      .all() as ExperimentRow[];
    return rows.map(toExperiment);
  }

  getExperiment(id: number): Experiment | null {
    const row = this.db
      .prepare(
        `SELECT e.*, (SELECT count(*) FROM runs WHERE experiment_id = e.id) AS run_count
         FROM experiments e WHERE e.id = ?`,
      )
      .get(id) as ExperimentRow | undefined;
    return row === undefined ? null : toExperiment(row);
  }

  /** The experiment runs go to when none is named; created when first needed. */
  defaultExperiment(): Experiment {
    this.db
      .prepare('INSERT OR IGNORE INTO experiments (name, description, created_at) VALUES (?, ?, ?)')
      .run(DEFAULT_EXPERIMENT, 'Runs started without naming an experiment.', this.now());
    const id = this.db.prepare('SELECT id FROM experiments WHERE name = ?').pluck().get(DEFAULT_EXPERIMENT) as number;
    return this.requireExperiment(id);
  }

  // ---- runs ---------------------------------------------------------------------------------------------

  /** A new run, queued. Its parent is the run owning the checkpoint its config names (see lineage.ts). */
  createRun(input: NewRun): Run {
    const run = parseInput(NewRun, input);
    const create = this.db.transaction(() => {
      const experimentId = run.experimentId ?? this.defaultExperiment().id;
      this.requireExperiment(experimentId);
      const parentRunId = deriveParentRunId(checkpointOwners(this.db), run.kind, run.config);
      const id = run.id ?? newRunId();
      try {
        this.db
          .prepare(
            `INSERT INTO runs (id, experiment_id, name, kind, status, config, parent_run_id, out_dir, backend, created_at)
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
          )
          .run(
            id,
            experimentId,
            run.name,
            run.kind,
            JSON.stringify(run.config),
            parentRunId,
            run.outDir,
            run.backend,
            this.now(),
          );
      } catch (error) {
        if (sqliteCode(error) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new StoreError('conflict', `A run with id ${id} exists already.`);
        }
        throw error;
      }
      return this.requireRun(id);
    });
    return create.immediate();
  }

  getRun(id: string): Run | null {
    const row = this.stmt.runById.get(id) as RunRow | undefined;
    return row === undefined ? null : toRun(row);
  }

  /** The run whose id is `idOrPrefix` or the only one starting with it (for typed ids in the CLI). */
  resolveRunId(idOrPrefix: string): string {
    if (this.stmt.statusOf.get(idOrPrefix) !== undefined) return idOrPrefix;
    const ids = this.db
      .prepare("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6")
      .pluck()
      .all(`${escapeLike(idOrPrefix)}%`) as string[];
    if (ids.length === 1 && ids[0] !== undefined) return ids[0];
    if (ids.length === 0) throw new StoreError('not-found', `No run has an id starting with "${idOrPrefix}".`);
    throw new StoreError(
      'conflict',
      `"${idOrPrefix}" matches several runs (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}): type more of the id.`,
    );
  }

  listRuns(filter: RunFilter = {}): Run[] {
    const f = parseInput(RunFilter, filter);
    const where: string[] = [];
    const params: unknown[] = [];
    const oneOrMany = (column: string, value: string | string[] | undefined): void => {
      if (value === undefined) return;
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0) {
        where.push('0');
        return;
      }
      where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
      params.push(...values);
    };
    oneOrMany('r.status', f.status);
    oneOrMany('r.kind', f.kind);
    if (f.experimentId !== undefined) {
      where.push('r.experiment_id = ?');
      params.push(f.experimentId);
    }
    if (f.parentRunId !== undefined) {
      where.push('r.parent_run_id = ?');
      params.push(f.parentRunId);
    }
    if (f.tag !== undefined) {
      where.push('EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag = ?)');
      params.push(f.tag.trim());
    }
    // Every word must appear somewhere: in the id, name, config, note or a tag.
    for (const word of (f.text ?? '').split(/\s+/).filter((w) => w.length > 0)) {
      where.push(`(r.id LIKE ? ESCAPE '\\' OR r.name LIKE ? ESCAPE '\\' OR r.config LIKE ? ESCAPE '\\'
        OR EXISTS (SELECT 1 FROM notes n WHERE n.run_id = r.id AND n.text LIKE ? ESCAPE '\\')
        OR EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag LIKE ? ESCAPE '\\'))`);
      params.push(...Array<string>(5).fill(`%${escapeLike(word)}%`));
    }

    let order: string;
    const orderParams: string[] = [];
    if (f.sort.startsWith('summary:')) {
      const key = f.sort.slice('summary:'.length);
      if (key.includes('"'))
        throw new StoreError('invalid-input', `Cannot sort by summary key ${key}: it contains a quote.`);
      order = 'json_extract(r.summary, ?)';
      orderParams.push(`$."${key}"`, `$."${key}"`);
    } else {
      order = SORT_COLUMNS[f.sort as keyof typeof SORT_COLUMNS];
    }
    const direction = f.direction === 'asc' ? 'ASC' : 'DESC';
    const sql = `${RUN_SELECT}
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY (${order}) IS NULL, ${order} ${direction}, r.created_at DESC, r.id
      LIMIT ? OFFSET ?`;
    const rows = this.db.prepare(sql).all(...params, ...orderParams, f.limit, f.offset) as RunRow[];
    return rows.map(toRun);
  }

  renameRun(id: string, name: string): Run {
    const trimmed = name.trim();
    if (trimmed.length === 0) throw new StoreError('invalid-input', 'A run name cannot be empty.');
    if (this.db.prepare('UPDATE runs SET name = ? WHERE id = ?').run(trimmed, id).changes === 0) this.notFound(id);
    return this.requireRun(id);
  }

  /**
   * Move a run to `to`, if that is legal (see RUN_TRANSITIONS); otherwise StoreError
   * 'invalid-transition'. `pid`: the engine process, when it starts running. `error`: why it failed.
   */
  updateRunStatus(id: string, to: RunStatus, details: { pid?: number; error?: string; reason?: string } = {}): Run {
    this.db
      .transaction(() => {
        this.transition(id, to, this.now(), details);
      })
      .immediate();
    return this.requireRun(id);
  }

  /** The engine process of a running run, as the engine reports it (what start-up recovery checks). */
  setEnginePid(id: string, pid: number): void {
    this.db.prepare("UPDATE runs SET pid = ? WHERE id = ? AND status = 'running'").run(pid, id);
  }

  /**
   * At start-up: runs still marked running were cut off by a crash of the app, the job or the machine.
   * They become 'interrupted' (resumable) and are returned. `stillRunning` keeps runs that another live
   * process (a CLI sharing this store) is known to be running.
   */
  markInterruptedRuns(stillRunning: StillRunning = () => false): Run[] {
    return this.db
      .transaction(() => {
        const now = this.now();
        const running = this.listRuns({ status: 'running', limit: 10_000 }).filter((run) => !stillRunning(run));
        for (const run of running) {
          const where =
            run.lastCheckpoint === null ? 'from the start (it has no checkpoint)' : `from ${run.lastCheckpoint}`;
          this.transition(run.id, 'interrupted', now, {
            reason: `MIMIR stopped while this run was running (last step ${run.step ?? 'unknown'}); it can be resumed ${where}.`,
          });
        }
        return running.map((run) => this.requireRun(run.id));
      })
      .immediate();
  }

  /** Delete a run and everything recorded about it. Returns its output folder, for the caller to remove. */
  deleteRun(id: string): { outDir: string | null } {
    return this.db
      .transaction(() => {
        const run = this.requireRun(id);
        if (run.status === 'running') {
          throw new StoreError('invalid-transition', `Run ${id} is running: cancel it before deleting it.`);
        }
        this.db.prepare('DELETE FROM runs WHERE id = ?').run(id);
        return { outDir: run.outDir };
      })
      .immediate();
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
    if (this.stmt.touch.run(now, runId).changes === 0) this.notFound(runId);
    const s = this.stmt;
    switch (event.type) {
      case 'metrics':
        for (const [key, value] of Object.entries(event.values)) {
          s.insertMetric.run(runId, key, event.step, finiteOrNull(value), now);
        }
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
        if (this.statusOf(runId) !== 'running') this.transition(runId, 'running', now, {});
        this.db
          .prepare(
            `UPDATE runs SET backend = ?, engine = ?, out_dir = ?, step = ?, epoch = ?, total_steps = ?, epochs = ?,
               started_at = coalesce(started_at, ?)
             WHERE id = ?`,
          )
          .run(
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
        s.insertLog.run(
          runId,
          now,
          'info',
          `${event.runKind} ${how} at step ${event.step} on the ${event.backend} backend${note}`,
        );
        return;
      }
      case 'preview':
        s.insertArtifact.run(
          runId,
          'preview',
          event.dir,
          event.step,
          JSON.stringify({
            epoch: event.epoch,
            files: event.files,
            count: event.count,
            imageSize: event.imageSize,
            perturbationScale: event.perturbationScale,
          }),
          now,
        );
        return;
      case 'checkpoint':
        s.insertArtifact.run(runId, 'checkpoint', event.path, event.step, JSON.stringify({ epoch: event.epoch }), now);
        s.lastCheckpoint.run(event.path, runId);
        return;
      case 'log':
        s.insertLog.run(runId, now, event.level, event.message);
        return;
      case 'done':
        this.transition(runId, 'done', now, {});
        s.finalCheckpoint.run(runId, event.checkpoint, event.step, event.epoch, now);
        this.db
          .prepare(
            `UPDATE runs SET step = ?, epoch = ?, last_checkpoint = ?, summary = ?, eta_seconds = NULL WHERE id = ?`,
          )
          .run(event.step, event.epoch, event.checkpoint, JSON.stringify(event.summary), runId);
        s.insertLog.run(runId, now, 'info', `done at step ${event.step} in ${event.seconds.toFixed(1)} s`);
        return;
      case 'failed':
        this.transition(runId, 'failed', now, { error: event.message, cause: event.cause ?? 'run' });
        this.db
          .prepare(
            'UPDATE runs SET step = coalesce(?, step), last_checkpoint = coalesce(?, last_checkpoint) WHERE id = ?',
          )
          .run(event.step, event.lastCheckpoint, runId);
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
    const { changes } = this.stmt.dropMetricsAfter.run(runId, keep);
    this.stmt.dropStepArtifactsAfter.run(runId, keep);
    return changes;
  }

  /** Check and apply a status change inside the caller's transaction. */
  private transition(
    id: string,
    to: RunStatus,
    now: number,
    details: { pid?: number; error?: string; reason?: string; cause?: FailureCause },
  ): void {
    const from = this.statusOf(id);
    if (!canTransition(from, to)) throw new StoreError('invalid-transition', transitionRefusal(id, from, to));
    const ended = to === 'done' || to === 'failed' || to === 'cancelled' || to === 'interrupted';
    if (to === 'running') {
      this.db
        .prepare(
          `UPDATE runs SET status = 'running', started_at = coalesce(started_at, ?), ended_at = NULL, error = NULL,
             error_cause = NULL, pid = coalesce(?, pid)
           WHERE id = ?`,
        )
        .run(now, details.pid ?? null, id);
    } else if (to === 'queued') {
      this.db
        .prepare(
          `UPDATE runs SET status = 'queued', ended_at = NULL, error = NULL, error_cause = NULL, pid = NULL,
             eta_seconds = NULL WHERE id = ?`,
        )
        .run(id);
    } else if (ended) {
      this.db
        .prepare(
          `UPDATE runs SET status = ?, ended_at = ?, pid = NULL, eta_seconds = NULL, error = coalesce(?, error),
             error_cause = ? WHERE id = ?`,
        )
        .run(
          to,
          now,
          to === 'failed' ? (details.error ?? 'failed (no message)') : (details.error ?? null),
          to === 'failed' ? (details.cause ?? 'run') : null,
          id,
        );
    }
    const why = details.error ?? details.reason;
    this.stmt.insertLog.run(
      id,
      now,
      to === 'failed' ? 'error' : to === 'interrupted' ? 'warn' : 'info',
      `status ${from} -> ${to}${why === undefined ? '' : `: ${why}`}`,
    );
  }

  // ---- metrics --------------------------------------------------------------------------------------------

  /** The metric keys a run has recorded, sorted. */
  listMetricKeys(runId: string): string[] {
    // A skip-scan over the (run_id, key, step) key: one index seek per distinct key, not one row per point.
    return this.db
      .prepare(
        `WITH RECURSIVE k(key) AS (
           SELECT min(key) FROM metrics WHERE run_id = @runId
           UNION ALL
           SELECT (SELECT min(key) FROM metrics WHERE run_id = @runId AND key > k.key) FROM k WHERE k.key IS NOT NULL
         ) SELECT key FROM k WHERE key IS NOT NULL`,
      )
      .pluck()
      .all({ runId }) as string[];
  }

  /** One series per (run, key) pair, run-major, downsampled to at most `maxPoints` points each. */
  getMetricSeries(runIds: readonly string[], keys: readonly string[], query: MetricSeriesQuery = {}): MetricSeries[] {
    const q = parseInput(MetricSeriesQuery, query);
    const from = q.fromStep ?? Number.MIN_SAFE_INTEGER;
    const to = q.toStep ?? Number.MAX_SAFE_INTEGER;
    const read = this.db.transaction(() => {
      const series: MetricSeries[] = [];
      for (const runId of runIds) {
        for (const key of keys) {
          const stats = this.stmt.seriesStats.get(runId, key, from, to) as { n: number; first: number; last: number };
          const rows = this.stmt.seriesRows.iterate(runId, key, from, to) as IterableIterator<MetricRow>;
          if (stats.n <= q.maxPoints) {
            const columns = { steps: [] as number[], values: [] as (number | null)[], wallTimes: [] as number[] };
            for (const [step, value, wallTime] of rows) {
              columns.steps.push(step);
              columns.values.push(value);
              columns.wallTimes.push(wallTime);
            }
            series.push({ runId, key, ...columns, total: stats.n, downsampled: false });
          } else {
            const columns = downsampleRows(rows, stats.first, stats.last, q.maxPoints);
            series.push({ runId, key, ...columns, total: stats.n, downsampled: true });
          }
        }
      }
      return series;
    });
    // A read transaction: every series comes from the same snapshot while a job keeps writing.
    return read.deferred();
  }

  // ---- tags and notes --------------------------------------------------------------------------------------

  addTag(runId: string, tag: string): Run {
    const clean = parseInput(Tag, tag);
    this.requireRun(runId);
    this.db.prepare('INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)').run(runId, clean);
    return this.requireRun(runId);
  }

  removeTag(runId: string, tag: string): Run {
    this.requireRun(runId);
    this.db.prepare('DELETE FROM tags WHERE run_id = ? AND tag = ?').run(runId, tag.trim());
    return this.requireRun(runId);
  }

  /** Every tag in use, with how many runs carry it. */
  listTags(): TagCount[] {
    return this.db.prepare('SELECT tag, count(*) AS count FROM tags GROUP BY tag ORDER BY tag').all() as TagCount[];
  }

  /** Set a run's note; an empty text removes it. */
  setNote(runId: string, text: string): Run {
    this.requireRun(runId);
    if (text.trim().length === 0) {
      this.db.prepare('DELETE FROM notes WHERE run_id = ?').run(runId);
    } else {
      this.db
        .prepare(
          `INSERT INTO notes (run_id, text, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (run_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at`,
        )
        .run(runId, text, this.now());
    }
    return this.requireRun(runId);
  }

  // ---- artifacts, evaluations, logs ---------------------------------------------------------------------------

  /** Record a file a run produced outside its events (an export, a report, a plot). */
  addArtifact(runId: string, input: NewArtifact): Artifact {
    const artifact = parseInput(NewArtifact, input);
    this.requireRun(runId);
    this.stmt.insertArtifact.run(
      runId,
      artifact.kind,
      artifact.path,
      artifact.step,
      JSON.stringify(artifact.metadata),
      this.now(),
    );
    const row = this.db
      .prepare('SELECT * FROM artifacts WHERE run_id = ? AND kind = ? AND path = ? AND step IS ?')
      .get(runId, artifact.kind, artifact.path, artifact.step) as ArtifactRow;
    return toArtifact(row);
  }

  listArtifacts(runId: string, kind?: ArtifactKind): Artifact[] {
    const rows = (
      kind === undefined
        ? this.db.prepare('SELECT * FROM artifacts WHERE run_id = ? ORDER BY step, id').all(runId)
        : this.db.prepare('SELECT * FROM artifacts WHERE run_id = ? AND kind = ? ORDER BY step, id').all(runId, kind)
    ) as ArtifactRow[];
    return rows.map(toArtifact);
  }

  addEvaluation(runId: string, input: NewEvaluation): Evaluation {
    const evaluation = parseInput(NewEvaluation, input);
    this.requireRun(runId);
    const id = this.db
      .prepare(
        'INSERT INTO evaluations (run_id, model_checkpoint, protocol, results, created_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(
        runId,
        evaluation.modelCheckpoint,
        JSON.stringify(evaluation.protocol),
        JSON.stringify(evaluation.results),
        this.now(),
      ).lastInsertRowid;
    return toEvaluation(this.db.prepare('SELECT * FROM evaluations WHERE id = ?').get(id) as EvaluationRow);
  }

  /** The evaluations a run made. */
  listEvaluations(runId: string): Evaluation[] {
    const rows = this.db
      .prepare('SELECT * FROM evaluations WHERE run_id = ? ORDER BY created_at, id')
      .all(runId) as EvaluationRow[];
    return rows.map(toEvaluation);
  }

  /** The evaluations of a model: made by the model's run itself, or by runs whose parent it is. */
  listEvaluationsOfModel(modelRunId: string): Evaluation[] {
    const rows = this.db
      .prepare(
        `SELECT e.* FROM evaluations e JOIN runs r ON r.id = e.run_id
         WHERE r.id = @model OR r.parent_run_id = @model ORDER BY e.created_at, e.id`,
      )
      .all({ model: modelRunId }) as EvaluationRow[];
    return rows.map(toEvaluation);
  }

  /** A run's log, oldest first; `afterId` fetches only entries newer than one seen. */
  listLogs(runId: string, options: { afterId?: number; limit?: number; minLevel?: LogLevel } = {}): LogEntry[] {
    const levels: LogLevel[] =
      options.minLevel === 'error'
        ? ['error']
        : options.minLevel === 'warn'
          ? ['warn', 'error']
          : ['info', 'warn', 'error'];
    const rows = this.db
      .prepare(
        `SELECT * FROM logs WHERE run_id = ? AND id > ? AND level IN (${levels.map(() => '?').join(', ')})
         ORDER BY id LIMIT ?`,
      )
      .all(runId, options.afterId ?? 0, ...levels, options.limit ?? 10_000) as LogRow[];
    return rows.map(toLogEntry);
  }

  // ---- helpers -----------------------------------------------------------------------------------------------

  private requireRun(id: string): Run {
    const run = this.getRun(id);
    if (run === null) this.notFound(id);
    return run;
  }

  private requireExperiment(id: number): Experiment {
    const experiment = this.getExperiment(id);
    if (experiment === null) throw new StoreError('not-found', `There is no experiment ${id}.`);
    return experiment;
  }

  private statusOf(id: string): RunStatus {
    const status = this.stmt.statusOf.get(id) as RunStatus | undefined;
    if (status === undefined) this.notFound(id);
    return status;
  }

  private notFound(id: string): never {
    throw new StoreError('not-found', `There is no run ${id} in the store (it may have been deleted).`);
  }
}

function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new StoreError('invalid-input', `Invalid input: ${result.error.message}`);
  return result.data;
}
