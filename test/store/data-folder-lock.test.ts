import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockDataFolder, type DataFolderLock } from '../../src/store/data-folder-lock';
import { storeError } from './expect-store-error';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'lock-holder.child.ts');
const HOOKS = path.join(here, 'ts-hooks.mjs');

let dir: string;
const locks: DataFolderLock[] = [];
const children: ChildProcess[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mimir-lock-'));
});
afterEach(() => {
  for (const lock of locks.splice(0)) lock.release();
  for (const child of children.splice(0)) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function lock(command = 'test'): DataFolderLock {
  const taken = lockDataFolder(dir, command);
  locks.push(taken);
  return taken;
}

/** A process holding the lock of `dir`, once it says so. */
function holder(dropAndGc = false): Promise<ChildProcess & { pid: number }> {
  const args = dropAndGc
    ? ['--expose-gc', '--import', HOOKS, CHILD, dir, '--drop-and-gc']
    : ['--import', HOOKS, CHILD, dir];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('locked') && child.pid !== undefined)
        resolve(child as ChildProcess & { pid: number });
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the lock holder exited (${code}) before locking: ${stderr}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

describe('one MIMIR per data folder', () => {
  it('a second taker in the same process is refused with the holder’s pid and the folder, until it is released', () => {
    const first = lock('mimir serve --port 8420');
    expect(first.previous).toBeNull();
    const refused = storeError(() => lockDataFolder(dir, 'second'));
    expect(refused.code).toBe('in-use');
    expect(refused.message).toContain(
      `The data folder ${dir} is in use by another MIMIR (pid ${process.pid}, mimir serve --port 8420`,
    );
    expect(refused.message).toMatch(/--data-dir DIR/);
    first.release();
    const again = lock();
    expect(again.previous).toBeNull(); // released cleanly: no owner left behind
  });

  it('refuses while another process holds it, naming that process', async () => {
    const child = await holder();
    const refused = storeError(() => lockDataFolder(dir, 'second'));
    expect(refused.code).toBe('in-use');
    expect(refused.message).toContain(`(pid ${child.pid}, lock-holder.child.ts`);
  });

  it('keeps the lock when its holder drops the returned object and garbage is collected', async () => {
    // A collected better-sqlite3 connection is closed, ending the transaction that is the lock.
    const child = await holder(true);
    const refused = storeError(() => lockDataFolder(dir, 'second'));
    expect(refused.code).toBe('in-use');
    expect(refused.message).toContain(`(pid ${child.pid}, lock-holder.child.ts`);
  });

  it('takes over the lock of a process that was killed, and says whose it was', async () => {
    const child = await holder();
    child.kill('SIGKILL');
    await exited(child);
    const taken = lock();
    expect(taken.previous).toMatchObject({ pid: child.pid, command: 'lock-holder.child.ts' });
  });
});
