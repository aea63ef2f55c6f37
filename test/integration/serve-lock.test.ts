import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { ROOT, requireBuilt } from '../helpers/build';

/** Real `mimir serve` processes on one data folder, as a user would start them in two terminals. */

const MICRO = { mode: 'mimir', model: 'micro', dataset: { kind: 'builtin', size: 128, imageSize: 16 }, batchSize: 32 };

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function mimir(args: string[]): ChildProcess & { stdout: NodeJS.ReadableStream; stderr: NodeJS.ReadableStream } {
  requireBuilt('main/cli.js');
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/mimir.mjs'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

/** A server that has printed its URL. */
function serve(dataDir: string): Promise<{ pid: number; port: number; token: string }> {
  return new Promise((resolve, reject) => {
    const child = mimir(['serve', '--port', '0', '--data-dir', dataDir]);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const url = /http:\/\/127\.0\.0\.1:(\d+)\/\?token=(\S+)/.exec(stdout);
      if (url?.[1] && url[2] && child.pid !== undefined)
        resolve({ pid: child.pid, port: Number(url[1]), token: url[2] });
    });
    child.on('exit', (code) => reject(new Error(`mimir serve exited (${code}) before serving: ${stderr}`)));
  });
}

/** A command run to its end; a server that starts serving is stopped (and reported with code null). */
function finished(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = mimir(args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('serving')) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('one `mimir serve` per data folder', () => {
  it(
    'a second server refuses with the first one’s pid and changes nothing; the first one’s runs end done',
    {
      timeout: 240_000,
    },
    async () => {
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-serve-lock-'));
      const first = await serve(dataDir);
      const api = async <T>(method: string, input: unknown): Promise<T> => {
        const response = await fetch(`http://127.0.0.1:${first.port}/api/call`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${first.token}` },
          body: JSON.stringify({ method, input }),
        });
        const body = (await response.json()) as { ok: boolean; value: T; error?: { message: string } };
        if (!body.ok) throw new Error(`${method}: ${body.error?.message}`);
        return body.value;
      };
      const until = async (id: string, done: (run: Run) => boolean): Promise<Run> => {
        for (const deadline = Date.now() + 120_000; ;) {
          const run = await api<Run>('runs.get', { id });
          if (done(run)) return run;
          if (Date.now() > deadline) throw new Error(`run ${id} is still ${run.status} (step ${run.step})`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };

      const running = await api<Run>('runs.create', {
        kind: 'pretrain',
        name: 'live',
        config: { ...MICRO, epochs: 6 },
      });
      const queued = await api<Run>('runs.create', { kind: 'pretrain', name: 'next', config: { ...MICRO, epochs: 1 } });
      await until(running.id, (run) => run.status === 'running' && (run.step ?? 0) >= 1);

      // Another port, then the first one's port: both refuse before touching a run.
      for (const port of ['0', String(first.port)]) {
        const second = await finished(['serve', '--port', port, '--data-dir', dataDir]);
        expect(second.code, second.stderr).toBe(1);
        expect(second.stderr).toContain(
          `The data folder ${dataDir} is in use by another MIMIR (pid ${first.pid}, mimir serve --port 0,`,
        );
        expect(second.stdout).not.toContain('serving');
      }
      expect(await api<Run>('runs.get', { id: running.id })).toMatchObject({ status: 'running' });
      expect(await api<Run>('runs.get', { id: queued.id })).toMatchObject({ status: 'queued', pid: null });

      const done = await until(running.id, (run) => run.status !== 'running');
      expect(done.status, done.error ?? '').toBe('done');
      const next = await until(queued.id, (run) => run.status !== 'queued' && run.status !== 'running');
      expect(next.status, next.error ?? '').toBe('done');
      const logs = await api<{ message: string }[]>('runs.logs', { id: running.id });
      expect(logs.map((entry) => entry.message).filter((message) => /interrupted/.test(message))).toEqual([]);
    },
  );
});
