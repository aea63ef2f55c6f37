import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'metrics-writer.child.ts');
const HOOKS = path.join(here, 'ts-hooks.mjs');
const KEYS = ['images_per_s', 'loss', 'lr', 'mi', 'recon_loss'];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mimir-store-kill-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface ChildResult {
  printed: number[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Run the writer (the real RunStore, loaded from its TypeScript source by Node's own type stripping)
 * and SIGKILL it `killAfterMs` after it has started writing. Returns the steps it acknowledged.
 */
function writeThenKill(file: string, runId: string, killAfterMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [file, runId], {
      execPath: process.execPath,
      execArgv: ['--import', HOOKS],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (timer === undefined && stdout.includes('started\n')) {
        timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000); // never hang the suite
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      const lines = stdout.split('\n').filter((line) => /^\d+$/.test(line));
      resolve({ printed: lines.map(Number), signal, stderr });
    });
  });
}

describe('a job process killed with SIGKILL while writing', () => {
  it('runs on a Node that can load the TypeScript store in a child', () => {
    // process.registerHooks and type stripping without a flag: Node 23.6+ (the project runs Node 24).
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });

  for (const killAfterMs of [60, 250, 700]) {
    it(`loses nothing it acknowledged (killed ${killAfterMs} ms in)`, async () => {
      const file = path.join(dir, `store-${killAfterMs}.db`);
      const setup = RunStore.open(file);
      const runId = setup.createRun({ name: `kill after ${killAfterMs} ms`, kind: 'pretrain' }).id;
      setup.close();

      const { printed, signal, stderr } = await writeThenKill(file, runId, killAfterMs);
      expect(stderr).toBe('');
      expect(signal).toBe('SIGKILL');
      expect(printed.length).toBeGreaterThan(0);
      const lastPrinted = printed.at(-1) ?? -1;
      expect(printed).toEqual(Array.from({ length: printed.length }, (_, i) => i));

      const store = RunStore.open(file);
      try {
        expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(store.db.pragma('foreign_key_check')).toEqual([]);

        // Every acknowledged step is there with all five values; at most the one step being committed
        // when the kill came may be there unacknowledged; nothing half-written.
        const steps = store.db
          .prepare(
            'SELECT step, count(*) AS n, group_concat(key) AS keys FROM metrics WHERE run_id = ? GROUP BY step ORDER BY step',
          )
          .all(runId) as { step: number; n: number; keys: string }[];
        const stored = steps.map((row) => row.step);
        expect(stored.slice(0, printed.length)).toEqual(printed);
        expect(stored.length - printed.length).toBeLessThanOrEqual(1);
        for (const row of steps) expect(row.keys.split(',').sort()).toEqual(KEYS);
        const loss = store.getMetricSeries([runId], ['loss'], { maxPoints: 1_000_000 })[0];
        expect(loss?.values.slice(0, printed.length)).toEqual(printed.map((step) => 1 / (step + 1)));

        // The batches (progress + checkpoint + log) every 50 steps: whole or absent.
        const lastStored = stored.at(-1) ?? -1;
        const checkpoints = store.listArtifacts(runId, 'checkpoint').map((a) => a.step);
        const acknowledged = printed.filter((step) => step % 50 === 49);
        expect(checkpoints.slice(0, acknowledged.length)).toEqual(acknowledged);
        expect(checkpoints.every((step) => step !== null && step <= lastStored)).toBe(true);
        const batchLogs = store.listLogs(runId).filter((entry) => entry.message.startsWith('checkpoint '));
        expect(batchLogs.map((entry) => Number(entry.message.slice('checkpoint '.length)))).toEqual(checkpoints);

        // At the next start-up the run is found cut off, resumable from its last checkpoint.
        const interrupted = store.markInterruptedRuns();
        expect(interrupted.map((run) => run.id)).toEqual([runId]);
        expect(interrupted[0]?.lastCheckpoint).toBe(
          checkpoints.length > 0 ? `/tmp/out/ckpt-${checkpoints.at(-1)}` : null,
        );
        console.log(
          `kill after ${killAfterMs} ms: ${printed.length} steps acknowledged (last ${lastPrinted}), ` +
            `${stored.length} stored, ${checkpoints.length} checkpoint batches, integrity ok`,
        );
      } finally {
        store.close();
      }
    });
  }
});
