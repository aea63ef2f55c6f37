import type { SqliteDatabase } from './database';
import { rederiveParents } from './lineage';
import { typeRunOutputs } from './run-outputs';

/**
 * The store's schema, as numbered migrations applied in order, each in one transaction, and recorded
 * in schema_migrations. Never edit a released migration: add the next one. A migration is SQL, or
 * (for data that needs the app's own rules) a function run inside the migration's transaction.
 */
export type Migration = { version: number; name: string } & (
  { sql: string; apply?: never } | { apply: (db: SqliteDatabase) => void; sql?: never }
);

const initialSchema = `
CREATE TABLE experiments (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL
);

CREATE TABLE runs (
  id                TEXT PRIMARY KEY,
  experiment_id     INTEGER NOT NULL REFERENCES experiments(id) ON DELETE RESTRICT,
  name              TEXT NOT NULL,
  kind              TEXT NOT NULL CHECK (kind IN ('pretrain', 'finetune', 'evaluate', 'landscape')),
  status            TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
  config            TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
  parent_run_id     TEXT REFERENCES runs(id) ON DELETE SET NULL,
  out_dir           TEXT,
  backend           TEXT,
  pid               INTEGER,
  created_at        INTEGER NOT NULL,
  started_at        INTEGER,
  ended_at          INTEGER,
  last_event_at     INTEGER,
  step              INTEGER,
  total_steps       INTEGER,
  epoch             INTEGER,
  epochs            INTEGER,
  images_per_second REAL,
  eta_seconds       REAL,
  error             TEXT,
  last_checkpoint   TEXT,
  summary           TEXT CHECK (summary IS NULL OR json_valid(summary))
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, created_at);
CREATE INDEX runs_by_status ON runs(status);
CREATE INDEX runs_by_parent ON runs(parent_run_id);

-- One value per (run, key, step): a resumed run re-logging a step replaces the old value.
-- WITHOUT ROWID keeps a series' points together on disk, in step order.
CREATE TABLE metrics (
  run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key       TEXT NOT NULL,
  step      INTEGER NOT NULL,
  value     REAL,            -- NULL: the engine reported NaN or +-Infinity
  wall_time INTEGER NOT NULL,
  PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;

CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL CHECK (kind IN ('checkpoint', 'preview', 'export', 'report', 'plot')),
  path       TEXT NOT NULL,
  step       INTEGER,
  metadata   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
  created_at INTEGER NOT NULL
);
-- The same checkpoint reported twice (a checkpoint event, then done) is one artifact.
CREATE UNIQUE INDEX artifacts_unique ON artifacts(run_id, kind, path, step);

CREATE TABLE evaluations (
  id               INTEGER PRIMARY KEY,
  run_id           TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  model_checkpoint TEXT NOT NULL,
  protocol         TEXT NOT NULL CHECK (json_valid(protocol)),
  results          TEXT NOT NULL CHECK (json_valid(results)),
  created_at       INTEGER NOT NULL
);
CREATE INDEX evaluations_by_run ON evaluations(run_id);

CREATE TABLE tags (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  tag    TEXT NOT NULL,
  PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_by_tag ON tags(tag);

CREATE TABLE notes (
  run_id     TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  text       TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE logs (
  id      INTEGER PRIMARY KEY,
  run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  time    INTEGER NOT NULL,
  level   TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
  message TEXT NOT NULL
);
CREATE INDEX logs_by_run ON logs(run_id, id);
`;

/** A sweep is an experiment whose runs were expanded from one spec (src/shared/sweep.ts), kept here. */
const sweeps = `
CREATE TABLE sweeps (
  experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id) ON DELETE CASCADE,
  spec          TEXT NOT NULL CHECK (json_valid(spec)),
  created_at    INTEGER NOT NULL
);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: initialSchema },
  // Rows written while the parent was taken from the caller (a duplicated run kept its old parent).
  { version: 2, name: 're-derive parent runs from the checkpoints their configs name', apply: rederiveParents },
  {
    version: 3,
    name: 'failure cause',
    // Why a failed run failed (config: edit a copy; run: resume may help). Older failures stay NULL.
    sql: `ALTER TABLE runs ADD COLUMN error_cause TEXT CHECK (error_cause IS NULL OR error_cause IN ('config', 'run'));`,
  },
  { version: 4, name: 'sweeps', sql: sweeps },
  // A done run's output had been stored as its checkpoint whatever it was (a report, a landscape's model).
  { version: 5, name: 'typed run outputs', apply: typeRunOutputs },
  {
    version: 6,
    name: 'run engine',
    // The PyTorch engine's compute as its started event said (JSON TorchEngineInfo); NULL for tfjs runs.
    sql: `ALTER TABLE runs ADD COLUMN engine TEXT CHECK (engine IS NULL OR json_valid(engine));`,
  },
];

/** Throws unless versions are 1, 2, 3, ... in order: a gap or duplicate is a programming error. */
export function checkMigrationOrder(migrations: readonly Migration[]): void {
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(
        `Migration "${migration.name}" has version ${migration.version}, expected ${index + 1}: versions must be 1, 2, 3, ... in order.`,
      );
    }
  });
}
