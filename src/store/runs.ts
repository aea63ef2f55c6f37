import { randomBytes } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { FailureCause } from '@shared/run-events';
import {
  NewExperiment,
  NewRun,
  RunFilter,
  Tag,
  type Experiment,
  type Run,
  type RunStatus,
  type TagCount,
} from '@shared/store-types';
import type { ArtifactsTable } from './artifacts';
import type { SqliteDatabase } from './database';
import { StoreError, sqliteCode } from './errors';
import { checkpointOwners, deriveParentRunId, RUN_FOLDERS_SQL } from './lineage';
import { parseInput, RUN_SELECT, toExperiment, toRun, type Clock, type ExperimentRow, type RunRow } from './rows';
import { canTransition, transitionRefusal } from './run-status';

const DEFAULT_EXPERIMENT = 'Default';

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

/** Every statement but the run list's (its WHERE varies with the filter: see listStatement). */
function prepare(db: SqliteDatabase) {
  const experimentSelect = `SELECT e.*, (SELECT count(*) FROM runs WHERE experiment_id = e.id) AS run_count
    FROM experiments e`;
  return {
    insertExperiment: db.prepare('INSERT INTO experiments (name, description, created_at) VALUES (?, ?, ?)'),
    insertDefaultExperiment: db.prepare(
      'INSERT OR IGNORE INTO experiments (name, description, created_at) VALUES (?, ?, ?)',
    ),
    experiments: db.prepare(`${experimentSelect} ORDER BY e.created_at, e.id`),
    experimentById: db.prepare(`${experimentSelect} WHERE e.id = ?`),
    experimentIdByName: db.prepare('SELECT id FROM experiments WHERE name = ?').pluck(),
    insertRun: db.prepare(
      `INSERT INTO runs (id, experiment_id, name, kind, status, config, parent_run_id, out_dir, backend, created_at)
       VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
    ),
    runById: db.prepare(`${RUN_SELECT} WHERE r.id = ?`),
    runFolders: db.prepare(RUN_FOLDERS_SQL),
    statusOf: db.prepare('SELECT status FROM runs WHERE id = ?').pluck(),
    idsLike: db.prepare("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6").pluck(),
    rename: db.prepare('UPDATE runs SET name = ? WHERE id = ?'),
    setPid: db.prepare("UPDATE runs SET pid = ? WHERE id = ? AND status = 'running'"),
    deleteRun: db.prepare('DELETE FROM runs WHERE id = ?'),
    toRunning: db.prepare(
      `UPDATE runs SET status = 'running', started_at = coalesce(started_at, ?), ended_at = NULL, error = NULL,
         error_cause = NULL, pid = coalesce(?, pid)
       WHERE id = ?`,
    ),
    toQueued: db.prepare(
      `UPDATE runs SET status = 'queued', ended_at = NULL, error = NULL, error_cause = NULL, pid = NULL,
         eta_seconds = NULL WHERE id = ?`,
    ),
    toEnded: db.prepare(
      `UPDATE runs SET status = ?, ended_at = ?, pid = NULL, eta_seconds = NULL, error = coalesce(?, error),
         error_cause = ? WHERE id = ?`,
    ),
    addTag: db.prepare('INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)'),
    removeTag: db.prepare('DELETE FROM tags WHERE run_id = ? AND tag = ?'),
    tags: db.prepare('SELECT tag, count(*) AS count FROM tags GROUP BY tag ORDER BY tag'),
    deleteNote: db.prepare('DELETE FROM notes WHERE run_id = ?'),
    setNote: db.prepare(
      `INSERT INTO notes (run_id, text, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at`,
    ),
  };
}

/** How many shapes of the run list's statement are kept prepared (filters differ in their WHERE). */
const LIST_STATEMENTS_KEPT = 64;

/** Experiments, runs and their status changes, tags and notes. */
export class RunsTable {
  private readonly db: SqliteDatabase;
  private readonly now: Clock;
  /** Where status changes are logged. */
  private readonly artifacts: ArtifactsTable;
  private readonly stmt: ReturnType<typeof prepare>;
  private readonly listStatements = new Map<string, Statement>();

  constructor(db: SqliteDatabase, now: Clock, artifacts: ArtifactsTable) {
    this.db = db;
    this.now = now;
    this.artifacts = artifacts;
    this.stmt = prepare(db);
  }

  // ---- experiments ----------------------------------------------------------------------------------

  createExperiment(input: NewExperiment): Experiment {
    const { name, description } = parseInput(NewExperiment, input);
    try {
      const id = this.stmt.insertExperiment.run(name, description, this.now()).lastInsertRowid;
      return this.requireExperiment(Number(id));
    } catch (error) {
      if (sqliteCode(error) === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new StoreError('conflict', `An experiment named "${name}" exists already: choose another name.`);
      }
      throw error;
    }
  }

  listExperiments(): Experiment[] {
    const rows = this.stmt.experiments.all() as ExperimentRow[];
    return rows.map(toExperiment);
  }

  getExperiment(id: number): Experiment | null {
    const row = this.stmt.experimentById.get(id) as ExperimentRow | undefined;
    return row === undefined ? null : toExperiment(row);
  }

  /** The experiment runs go to when none is named; created when first needed. */
  defaultExperiment(): Experiment {
    this.stmt.insertDefaultExperiment.run(DEFAULT_EXPERIMENT, 'Runs started without naming an experiment.', this.now());
    const id = this.stmt.experimentIdByName.get(DEFAULT_EXPERIMENT) as number;
    return this.requireExperiment(id);
  }

  // ---- runs -----------------------------------------------------------------------------------------------

  /** A new run, queued. Its parent is the run owning the checkpoint its config names (see lineage.ts). */
  createRun(input: NewRun): Run {
    const run = parseInput(NewRun, input);
    const create = this.db.transaction(() => {
      const experimentId = run.experimentId ?? this.defaultExperiment().id;
      this.requireExperiment(experimentId);
      const parentRunId = deriveParentRunId(
        checkpointOwners(this.stmt.runFolders.all() as { id: string; out_dir: string }[]),
        run.kind,
        run.config,
      );
      const id = run.id ?? newRunId();
      try {
        this.stmt.insertRun.run(
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
    const ids = this.stmt.idsLike.all(`${escapeLike(idOrPrefix)}%`) as string[];
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
    const rows = this.listStatement(sql).all(...params, ...orderParams, f.limit, f.offset) as RunRow[];
    return rows.map(toRun);
  }

  renameRun(id: string, name: string): Run {
    const trimmed = name.trim();
    if (trimmed.length === 0) throw new StoreError('invalid-input', 'A run name cannot be empty.');
    if (this.stmt.rename.run(trimmed, id).changes === 0) this.notFound(id);
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
    this.stmt.setPid.run(pid, id);
  }

  /**
   * At start-up: runs still marked running were cut off by a crash of the app, the job or the machine.
   * They become 'interrupted' (resumable) and are returned. `stillRunning` keeps runs that another live
   * process (a CLI sharing this store) is known to be running.
   */
  markInterruptedRuns(stillRunning: (run: Run) => boolean = () => false): Run[] {
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
        this.stmt.deleteRun.run(id);
        return { outDir: run.outDir };
      })
      .immediate();
  }

  /** Check and apply a status change inside the caller's transaction. */
  transition(
    id: string,
    to: RunStatus,
    now: number,
    details: { pid?: number; error?: string; reason?: string; cause?: FailureCause },
  ): void {
    const from = this.statusOf(id);
    if (!canTransition(from, to)) throw new StoreError('invalid-transition', transitionRefusal(id, from, to));
    const ended = to === 'done' || to === 'failed' || to === 'cancelled' || to === 'interrupted';
    if (to === 'running') {
      this.stmt.toRunning.run(now, details.pid ?? null, id);
    } else if (to === 'queued') {
      this.stmt.toQueued.run(id);
    } else if (ended) {
      this.stmt.toEnded.run(
        to,
        now,
        to === 'failed' ? (details.error ?? 'failed (no message)') : (details.error ?? null),
        to === 'failed' ? (details.cause ?? 'run') : null,
        id,
      );
    }
    const why = details.error ?? details.reason;
    this.artifacts.log(
      id,
      to === 'failed' ? 'error' : to === 'interrupted' ? 'warn' : 'info',
      `status ${from} -> ${to}${why === undefined ? '' : `: ${why}`}`,
      now,
    );
  }

  addTag(runId: string, tag: string): Run {
    const clean = parseInput(Tag, tag);
    this.requireRun(runId);
    this.stmt.addTag.run(runId, clean);
    return this.requireRun(runId);
  }

  removeTag(runId: string, tag: string): Run {
    this.requireRun(runId);
    this.stmt.removeTag.run(runId, tag.trim());
    return this.requireRun(runId);
  }

  /** Every tag in use, with how many runs carry it. */
  listTags(): TagCount[] {
    return this.stmt.tags.all() as TagCount[];
  }

  /** Set a run's note; an empty text removes it. */
  setNote(runId: string, text: string): Run {
    this.requireRun(runId);
    if (text.trim().length === 0) {
      this.stmt.deleteNote.run(runId);
    } else {
      this.stmt.setNote.run(runId, text, this.now());
    }
    return this.requireRun(runId);
  }

  requireRun(id: string): Run {
    const run = this.getRun(id);
    if (run === null) this.notFound(id);
    return run;
  }

  private requireExperiment(id: number): Experiment {
    const experiment = this.getExperiment(id);
    if (experiment === null) throw new StoreError('not-found', `There is no experiment ${id}.`);
    return experiment;
  }

  statusOf(id: string): RunStatus {
    const status = this.stmt.statusOf.get(id) as RunStatus | undefined;
    if (status === undefined) this.notFound(id);
    return status;
  }

  notFound(id: string): never {
    throw new StoreError('not-found', `There is no run ${id} in the store (it may have been deleted).`);
  }

  /** The run list's statement for this WHERE and ORDER BY, prepared once per shape. */
  private listStatement(sql: string): Statement {
    let statement = this.listStatements.get(sql);
    if (statement === undefined) {
      if (this.listStatements.size >= LIST_STATEMENTS_KEPT) this.listStatements.clear();
      statement = this.db.prepare(sql);
      this.listStatements.set(sql, statement);
    }
    return statement;
  }
}
