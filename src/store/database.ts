import Database from 'better-sqlite3';
import { errorMessage } from '@shared/unknown-value';
import { StoreError, sqliteCode } from './errors';
import { MIGRATIONS, checkMigrationOrder, type Migration } from './migrations';

export type SqliteDatabase = Database.Database;

export interface OpenDatabaseOptions {
  /** How long a statement waits for another connection's lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * `normal` (default): in WAL mode a commit survives a crash of any process, and the file stays
   * consistent after a power cut, which may lose the last commits. `full` syncs every commit (slower).
   */
  synchronous?: 'normal' | 'full';
  /** The schema to bring the file to; tests pass their own. */
  migrations?: readonly Migration[];
}

export interface MigrationResult {
  from: number;
  to: number;
  applied: number[];
}

/**
 * Open (creating if needed) the store at `file`, or an in-memory one for ':memory:', and bring its
 * schema up to date. Throws StoreError with a message a user can act on when the file is not a SQLite
 * database, is not a MIMIR store, is locked, or was written by a newer MIMIR.
 */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): SqliteDatabase {
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  let db: SqliteDatabase;
  try {
    db = new Database(file, { timeout: busyTimeoutMs });
  } catch (error) {
    throw explainOpenError(error, file);
  }
  try {
    db.pragma(`busy_timeout = ${Math.round(busyTimeoutMs)}`);
    db.pragma('journal_mode = WAL'); // ':memory:' stays 'memory', which is fine
    db.pragma('foreign_keys = ON');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    migrate(db, options.migrations ?? MIGRATIONS, file);
    return db;
  } catch (error) {
    db.close();
    throw explainOpenError(error, file);
  }
}

/** The highest migration applied to `db`, 0 for a database without the store's schema. */
export function schemaVersion(db: SqliteDatabase): number {
  if (!hasTable(db, 'schema_migrations')) return 0;
  const row = db.prepare('SELECT max(version) AS version FROM schema_migrations').get() as { version: number | null };
  return row.version ?? 0;
}

/** Apply the migrations `db` lacks, each in its own transaction; refuse a schema newer than `migrations`. */
export function migrate(db: SqliteDatabase, migrations: readonly Migration[], label = 'the database'): MigrationResult {
  checkMigrationOrder(migrations);
  const latest = migrations.length;
  const from = schemaVersion(db);
  if (from > latest) {
    throw new StoreError(
      'too-new',
      `${label} has schema version ${from}, but this version of MIMIR knows versions up to ${latest}: ` +
        'it was written by a newer MIMIR. Update MIMIR, or choose another store; the file was not changed.',
    );
  }
  if (from === 0 && !hasTable(db, 'schema_migrations')) {
    db.transaction(() => {
      if (hasTable(db, 'schema_migrations')) return; // another process got here first
      const foreign = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 3")
        .pluck()
        .all() as string[];
      if (foreign.length > 0) {
        throw new StoreError(
          'not-a-store',
          `${label} is a SQLite database but not a MIMIR store (it has tables ${foreign.join(', ')} and no ` +
            'schema_migrations): choose another file, so that its data is not mixed with runs.',
        );
      }
      db.exec(`CREATE TABLE schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at INTEGER NOT NULL
      )`);
    }).immediate();
  }

  const applied: number[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of migrations) {
    const done = db
      .transaction(() => {
        // Re-read inside the write lock: another process may have migrated since.
        const current = schemaVersion(db);
        if (current >= migration.version) return false;
        try {
          if (migration.sql !== undefined) db.exec(migration.sql);
          else migration.apply(db);
        } catch (error) {
          throw new StoreError(
            'migration-failed',
            `Migration ${migration.version} ("${migration.name}") of ${label} failed and was rolled back: ` +
              errorMessage(error),
            { cause: error },
          );
        }
        record.run(migration.version, migration.name, Date.now());
        return true;
      })
      .immediate();
    if (done) applied.push(migration.version);
  }
  return { from, to: schemaVersion(db), applied };
}

function hasTable(db: SqliteDatabase, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function explainOpenError(error: unknown, file: string): Error {
  if (error instanceof StoreError) return error;
  const detail = errorMessage(error);
  switch (sqliteCode(error)) {
    case 'SQLITE_NOTADB':
      return new StoreError(
        'not-a-database',
        `${file} is not a SQLite database (${detail}). Choose another file for the store, or move this one ` +
          'away and MIMIR will create a new store there.',
        { cause: error },
      );
    case 'SQLITE_CORRUPT':
      return new StoreError(
        'corrupt',
        `${file} is damaged (${detail}). Keep a copy, then try \`sqlite3 ${file} .recover\` to save its data.`,
        { cause: error },
      );
    case 'SQLITE_BUSY':
    case 'SQLITE_BUSY_SNAPSHOT':
    case 'SQLITE_LOCKED':
      return new StoreError(
        'locked',
        `${file} is locked by another process (${detail}): another program holds it exclusively. ` +
          'Close it (or the other MIMIR using this store) and try again.',
        { cause: error },
      );
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_READONLY':
    case 'SQLITE_PERM':
    case 'SQLITE_AUTH':
      return new StoreError(
        'cannot-open',
        `Cannot open ${file} for writing (${detail}): check that it exists and that you may write to it and its folder.`,
        { cause: error },
      );
    default:
      if (error instanceof TypeError && /directory does not exist/.test(detail)) {
        return new StoreError('cannot-open', `Cannot create ${file}: its folder does not exist.`, { cause: error });
      }
      return error instanceof Error ? error : new Error(detail);
  }
}
