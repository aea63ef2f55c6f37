import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { errorMessage } from '@shared/unknown-value';
import { StoreError, sqliteCode } from './errors';

/**
 * One MIMIR per data folder: the process that records the runs and runs their engines must be the
 * only one, or a second one's start-up recovery marks the first one's live runs interrupted and both
 * start engines on the same queued runs.
 *
 * The guarantee is the operating system's: the holder keeps a write transaction open on
 * `<data>/mimir.lock` (a small SQLite file), i.e. an fcntl/LockFileEx lock that the OS releases
 * when the process ends however it ends, so a crashed holder leaves no stale lock to clear by hand.
 * The file also records the holder's pid, for the message a second instance prints.
 */
export const LOCK_FILE = 'mimir.lock';

/**
 * The connections that hold locks. A better-sqlite3 connection that is garbage-collected is closed,
 * which would end its transaction: a caller that dropped the returned object would lose the lock at
 * some later collection. Held here, a lock lasts until release() or the end of the process.
 */
const heldLocks = new Set<Database.Database>();

export interface DataFolderOwner {
  pid: number;
  /** What holds it, e.g. "mimir serve" or "MIMIR Workbench (Electron)". */
  command: string;
  /** Milliseconds since the epoch. */
  since: number;
}

export interface DataFolderLock {
  readonly file: string;
  /** The owner before us when it ended without releasing the folder (it crashed or was killed); else null. */
  readonly previous: DataFolderOwner | null;
  release(): void;
}

/**
 * Take the data folder `dataDir` (created if needed) for this process, or throw StoreError 'in-use'
 * naming the process that holds it. Call before reading or changing any run.
 */
export function lockDataFolder(dataDir: string, command: string): DataFolderLock {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (error) {
    throw new StoreError(
      'cannot-open',
      `Cannot create the lock file ${file} (${errorMessage(error)}): check that ` +
        'the data folder exists and that you may write to it.',
      { cause: error },
    );
  }
  try {
    db.pragma('busy_timeout = 0');
    const previous = take(db, dataDir, () => {
      db.exec(`CREATE TABLE IF NOT EXISTS owner (
        id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, command TEXT NOT NULL, since INTEGER NOT NULL)`);
      const before = readOwner(db);
      db.prepare('INSERT OR REPLACE INTO owner (id, pid, command, since) VALUES (1, ?, ?, ?)').run(
        process.pid,
        command,
        Date.now(),
      );
      return before;
    });
    db.exec('COMMIT');
    // Hold the lock from here on: an open write transaction that writes nothing. Another process may
    // have slipped in between the commit and this BEGIN: then it holds the folder and we refuse.
    take(db, dataDir, () => undefined);
    heldLocks.add(db);
    let released = false;
    return {
      file,
      previous,
      release: () => {
        if (released) return;
        released = true;
        // Clear the record and let go in one commit: a record found by the next owner means a crash.
        db.prepare('DELETE FROM owner').run();
        db.exec('COMMIT');
        db.close();
        heldLocks.delete(db);
      },
    };
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
    throw error;
  }
}

/** Begin the write transaction that is the lock and run `work` in it, or throw 'in-use' naming the holder. */
function take<T>(db: Database.Database, dataDir: string, work: () => T): T {
  try {
    db.exec('BEGIN IMMEDIATE');
  } catch (error) {
    if (sqliteCode(error)?.startsWith('SQLITE_BUSY') !== true) throw error;
    throw new StoreError('in-use', inUseMessage(dataDir, readOwnerWhileHeld(db)), { cause: error });
  }
  return work();
}

function readOwner(db: Database.Database): DataFolderOwner | null {
  const row = db.prepare('SELECT pid, command, since FROM owner WHERE id = 1').get() as DataFolderOwner | undefined;
  return row ?? null;
}

/** The holder's record; null while the holder is still writing it (reads wait briefly for that). */
function readOwnerWhileHeld(db: Database.Database): DataFolderOwner | null {
  try {
    db.pragma('busy_timeout = 2000');
    return readOwner(db);
  } catch {
    return null;
  } finally {
    db.pragma('busy_timeout = 0');
  }
}

function inUseMessage(dataDir: string, owner: DataFolderOwner | null): string {
  const who =
    owner === null
      ? 'another MIMIR process'
      : `another MIMIR (pid ${owner.pid}, ${owner.command}, since ${new Date(owner.since).toISOString()})`;
  return (
    `The data folder ${dataDir} is in use by ${who}. Only one MIMIR may use a data folder at a time: it records ` +
    'the runs and runs their engines. Use the one that is running (open the URL it printed), stop it, or start ' +
    'this one on another folder (--data-dir DIR, or MIMIR_HOME). Nothing was changed.'
  );
}
