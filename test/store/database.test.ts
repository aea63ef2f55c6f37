import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase, schemaVersion } from '../../src/store/database';
import { MIGRATIONS, type Migration } from '../../src/store/migrations';
import { storeError } from './expect-store-error';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mimir-store-db-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function tables(db: Database.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all() as string[];
}

describe('openDatabase', () => {
  it('creates the schema in an empty file, with WAL, foreign keys, synchronous NORMAL and a busy timeout', () => {
    const file = path.join(dir, 'store.db');
    const db = openDatabase(file, { busyTimeoutMs: 1234 });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(tables(db)).toEqual([
      'artifacts',
      'evaluations',
      'experiments',
      'logs',
      'metrics',
      'notes',
      'runs',
      'schema_migrations',
      'sweeps',
      'tags',
    ]);
    // metrics is keyed (run_id, key, step), and a series query walks that key in step order.
    const pk = db
      .prepare("SELECT name FROM pragma_index_info('sqlite_autoindex_metrics_1') ORDER BY seqno")
      .pluck()
      .all();
    expect(pk).toEqual(['run_id', 'key', 'step']);
    const plan = db
      .prepare(
        'EXPLAIN QUERY PLAN SELECT step, value FROM metrics WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ? ORDER BY step',
      )
      .all('r', 'loss', 0, 10) as { detail: string }[];
    expect(plan.map((row) => row.detail)).toEqual([
      'SEARCH metrics USING PRIMARY KEY (run_id=? AND key=? AND step>? AND step<?)',
    ]);
    db.close();
  });

  it('re-opens an up-to-date store without applying anything again', () => {
    const file = path.join(dir, 'store.db');
    const first = openDatabase(file);
    first.prepare("INSERT INTO experiments (name, created_at) VALUES ('kept', 1)").run();
    const applied = first.prepare('SELECT version, name, applied_at FROM schema_migrations').all();
    first.close();

    const second = openDatabase(file);
    expect(second.prepare('SELECT version, name, applied_at FROM schema_migrations').all()).toEqual(applied);
    expect(second.prepare('SELECT name FROM experiments').pluck().all()).toEqual(['kept']);
    expect(migrate(second, MIGRATIONS)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length, applied: [] });
    second.close();
  });

  it('applies only the migrations a store lacks, each recorded', () => {
    const file = path.join(dir, 'store.db');
    openDatabase(file).close();
    const next: Migration = {
      version: MIGRATIONS.length + 1,
      name: 'add a column',
      sql: 'ALTER TABLE experiments ADD COLUMN colour TEXT',
    };
    const db = openDatabase(file, { migrations: [...MIGRATIONS, next] });
    expect(schemaVersion(db)).toBe(next.version);
    const columns = db.prepare("SELECT name FROM pragma_table_info('experiments')").pluck().all();
    expect(columns).toContain('colour');
    expect(db.prepare('SELECT name FROM schema_migrations WHERE version = ?').pluck().get(next.version)).toBe(
      'add a column',
    );
    db.close();
  });

  it('rolls back a migration that fails, leaving the earlier version intact', () => {
    const file = path.join(dir, 'store.db');
    openDatabase(file).close();
    const broken: Migration = {
      version: MIGRATIONS.length + 1,
      name: 'broken',
      sql: 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);',
    };
    const error = storeError(() => openDatabase(file, { migrations: [...MIGRATIONS, broken] }));
    expect(error.code).toBe('migration-failed');
    expect(error.message).toMatch(
      new RegExp(`Migration ${broken.version} \\("broken"\\).*rolled back.*no such table: no_such_table`),
    );
    const db = openDatabase(file);
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(tables(db)).not.toContain('half_done');
    db.close();
  });

  it('refuses a store written by a newer MIMIR, without changing it', () => {
    const file = path.join(dir, 'store.db');
    const db = openDatabase(file);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 1)").run();
    db.close();
    const before = readFileSync(file);

    const error = storeError(() => openDatabase(file));
    expect(error.code).toBe('too-new');
    expect(error.message).toContain('schema version 99');
    expect(error.message).toContain(`knows versions up to ${MIGRATIONS.length}`);
    expect(error.message).toContain('Update MIMIR');
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('refuses a migration list that is not numbered 1, 2, 3, ...', () => {
    const db = new Database(':memory:');
    expect(() => migrate(db, [{ ...MIGRATIONS[0], version: 2 } as Migration])).toThrow(/expected 1/);
    db.close();
  });

  it('explains a file that is not a SQLite database', () => {
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'These are my notes, not a database. '.repeat(200));
    const error = storeError(() => openDatabase(file));
    expect(error.code).toBe('not-a-database');
    expect(error.message).toContain(`${file} is not a SQLite database`);
    expect(readFileSync(file, 'utf8')).toMatch(/^These are my notes/); // untouched
  });

  it('explains a SQLite database that is not a MIMIR store, and leaves it alone', () => {
    const file = path.join(dir, 'other.db');
    const other = new Database(file);
    other.exec('CREATE TABLE contacts (name TEXT)');
    other.close();
    const error = storeError(() => openDatabase(file));
    expect(error.code).toBe('not-a-store');
    expect(error.message).toContain('contacts');
    const check = new Database(file);
    expect(tables(check)).toEqual(['contacts']);
    check.close();
  });

  it('explains a store another process holds locked', () => {
    const file = path.join(dir, 'store.db');
    openDatabase(file).close();
    const holder = new Database(file);
    holder.pragma('locking_mode = EXCLUSIVE');
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const started = performance.now();
      const error = storeError(() => openDatabase(file, { busyTimeoutMs: 200 }));
      expect(error.code).toBe('locked');
      expect(error.message).toMatch(/locked by another process/);
      expect(performance.now() - started).toBeGreaterThanOrEqual(150); // it waited for the lock first
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    openDatabase(file).close(); // usable again once released
  });

  it('explains a folder that does not exist', () => {
    const error = storeError(() => openDatabase(path.join(dir, 'missing', 'store.db')));
    expect(error.code).toBe('cannot-open');
    expect(error.message).toContain('folder does not exist');
  });

  it('opens an in-memory store', () => {
    const db = openDatabase(':memory:');
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    db.close();
  });
});
