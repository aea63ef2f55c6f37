import type { RunOutput } from '@shared/run-events';
import {
  NewArtifact,
  NewEvaluation,
  type Artifact,
  type ArtifactKind,
  type Evaluation,
  type LogEntry,
  type LogLevel,
} from '@shared/store-types';
import type { SqliteDatabase } from './database';
import {
  parseInput,
  toArtifact,
  toEvaluation,
  toLogEntry,
  type ArtifactRow,
  type Clock,
  type EvaluationRow,
  type LogRow,
} from './rows';

/** The artifact a run's output is recorded as: a landscape.json is the data of the landscape's plot. */
export const OUTPUT_ARTIFACT: Record<RunOutput['kind'], ArtifactKind> = {
  checkpoint: 'checkpoint',
  report: 'report',
  landscape: 'plot',
};

/** The log levels at or above each minimum, most verbose first. */
const LEVELS_FROM: Record<LogLevel, LogLevel[]> = {
  info: ['info', 'warn', 'error'],
  warn: ['warn', 'error'],
  error: ['error'],
};

function prepare(db: SqliteDatabase) {
  const logsFrom = (levels: LogLevel[]) =>
    db.prepare(
      `SELECT * FROM logs WHERE run_id = ? AND id > ? AND level IN (${levels.map(() => '?').join(', ')})
       ORDER BY id LIMIT ?`,
    );
  return {
    insert: db.prepare(
      `INSERT INTO artifacts (run_id, kind, path, step, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id, kind, path, step) DO NOTHING`,
    ),
    byKey: db.prepare('SELECT * FROM artifacts WHERE run_id = ? AND kind = ? AND path = ? AND step IS ?'),
    ofRun: db.prepare('SELECT * FROM artifacts WHERE run_id = ? ORDER BY step, id'),
    ofRunAndKind: db.prepare('SELECT * FROM artifacts WHERE run_id = ? AND kind = ? ORDER BY step, id'),
    // The final checkpoint may have been reported already by a checkpoint event: mark it final.
    finalOutput: db.prepare(
      `INSERT INTO artifacts (run_id, kind, path, step, metadata, created_at)
       VALUES (?, ?, ?, ?, json_object('epoch', ?, 'final', json('true')), ?)
       ON CONFLICT (run_id, kind, path, step) DO UPDATE SET metadata = json_set(metadata, '$.final', json('true'))`,
    ),
    dropStepArtifactsAfter: db.prepare(
      "DELETE FROM artifacts WHERE run_id = ? AND kind IN ('preview', 'checkpoint') AND step > ?",
    ),
    insertEvaluation: db.prepare(
      'INSERT INTO evaluations (run_id, model_checkpoint, protocol, results, created_at) VALUES (?, ?, ?, ?, ?)',
    ),
    evaluationById: db.prepare('SELECT * FROM evaluations WHERE id = ?'),
    evaluationsOfRun: db.prepare('SELECT * FROM evaluations WHERE run_id = ? ORDER BY created_at, id'),
    evaluationsOfModel: db.prepare(
      `SELECT e.* FROM evaluations e JOIN runs r ON r.id = e.run_id
       WHERE r.id = @model OR r.parent_run_id = @model ORDER BY e.created_at, e.id`,
    ),
    insertLog: db.prepare('INSERT INTO logs (run_id, time, level, message) VALUES (?, ?, ?, ?)'),
    logsFrom: {
      info: logsFrom(LEVELS_FROM.info),
      warn: logsFrom(LEVELS_FROM.warn),
      error: logsFrom(LEVELS_FROM.error),
    },
  };
}

/**
 * What a run produced besides metrics: artifacts (checkpoints, previews, reports, exports),
 * evaluations and its log. The callers check that the run exists.
 */
export class ArtifactsTable {
  private readonly stmt: ReturnType<typeof prepare>;
  private readonly now: Clock;

  constructor(db: SqliteDatabase, now: Clock) {
    this.stmt = prepare(db);
    this.now = now;
  }

  /** Records an artifact once (a second one with the same kind, path and step is ignored); returns it. */
  add(runId: string, input: NewArtifact): Artifact {
    const artifact = parseInput(NewArtifact, input);
    this.stmt.insert.run(
      runId,
      artifact.kind,
      artifact.path,
      artifact.step,
      JSON.stringify(artifact.metadata),
      this.now(),
    );
    return toArtifact(this.stmt.byKey.get(runId, artifact.kind, artifact.path, artifact.step) as ArtifactRow);
  }

  /** Inside the caller's transaction, from a run event (already validated): once per kind, path and step. */
  record(runId: string, kind: ArtifactKind, path: string, step: number, metadata: object, now: number): void {
    this.stmt.insert.run(runId, kind, path, step, JSON.stringify(metadata), now);
  }

  /** Inside the caller's transaction: what a run ended with (see OUTPUT_ARTIFACT), marked final. */
  recordFinalOutput(runId: string, output: RunOutput, step: number, epoch: number, now: number): void {
    this.stmt.finalOutput.run(runId, OUTPUT_ARTIFACT[output.kind], output.path, step, epoch, now);
  }

  /** Previews and checkpoints after `step` go (a restart). */
  dropStepArtifactsAfter(runId: string, step: number): void {
    this.stmt.dropStepArtifactsAfter.run(runId, step);
  }

  list(runId: string, kind?: ArtifactKind): Artifact[] {
    const rows = (
      kind === undefined ? this.stmt.ofRun.all(runId) : this.stmt.ofRunAndKind.all(runId, kind)
    ) as ArtifactRow[];
    return rows.map(toArtifact);
  }

  addEvaluation(runId: string, input: NewEvaluation): Evaluation {
    const evaluation = parseInput(NewEvaluation, input);
    const id = this.stmt.insertEvaluation.run(
      runId,
      evaluation.modelCheckpoint,
      JSON.stringify(evaluation.protocol),
      JSON.stringify(evaluation.results),
      this.now(),
    ).lastInsertRowid;
    return toEvaluation(this.stmt.evaluationById.get(id) as EvaluationRow);
  }

  listEvaluations(runId: string): Evaluation[] {
    return (this.stmt.evaluationsOfRun.all(runId) as EvaluationRow[]).map(toEvaluation);
  }

  /** The evaluations of a model: made by the model's run itself, or by runs whose parent it is. */
  listEvaluationsOfModel(modelRunId: string): Evaluation[] {
    return (this.stmt.evaluationsOfModel.all({ model: modelRunId }) as EvaluationRow[]).map(toEvaluation);
  }

  log(runId: string, level: LogLevel, message: string, now: number): void {
    this.stmt.insertLog.run(runId, now, level, message);
  }

  /** A run's log, oldest first; `afterId` fetches only entries newer than one seen. */
  listLogs(runId: string, options: { afterId?: number; limit?: number; minLevel?: LogLevel } = {}): LogEntry[] {
    const minLevel = options.minLevel ?? 'info';
    const rows = this.stmt.logsFrom[minLevel].all(
      runId,
      options.afterId ?? 0,
      ...LEVELS_FROM[minLevel],
      options.limit ?? 10_000,
    ) as LogRow[];
    return rows.map(toLogEntry);
  }
}
