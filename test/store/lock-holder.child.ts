/**
 * Child process of data-folder-lock.test.ts: takes a data folder's lock, prints "locked", then waits
 * (the test kills it, or it exits after a minute so that it never outlives a broken test).
 * With --drop-and-gc (node --expose-gc) it keeps no reference to the lock and collects garbage before
 * printing: the lock must outlive its dropped object.
 * Run as: node --import ./test/store/ts-hooks.mjs lock-holder.child.ts <data folder> [--drop-and-gc]
 */
import { writeSync } from 'node:fs';
import { lockDataFolder } from '../../src/store/data-folder-lock';

const [dataDir, mode] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('usage: lock-holder.child.ts <data folder> [--drop-and-gc]');
if (mode === '--drop-and-gc') {
  lockDataFolder(dataDir, 'lock-holder.child.ts');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('--drop-and-gc needs node --expose-gc');
  gc();
  gc();
  writeSync(1, 'locked\n');
  setTimeout(() => process.exit(0), 60_000);
} else {
  const lock = lockDataFolder(dataDir, 'lock-holder.child.ts');
  writeSync(1, 'locked\n');
  setTimeout(() => {
    lock.release();
    process.exit(0);
  }, 60_000);
}
