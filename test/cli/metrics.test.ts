import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store';
import { runMimir } from '../helpers/cli';

/**
 * `mimir metrics <run>`: every stored point (past the 2,000 a chart is downsampled to), one column
 * per key, empty where a key has no point at a step, checked against the values the test stored.
 */

const STEPS = 2600;
/** What the test stores, by key and step: loss at every step, lr at every step, accuracy every 500 steps. */
const stored = new Map<string, Map<number, number>>([
  ['loss', new Map()],
  ['lr', new Map()],
  ['eval_accuracy', new Map()],
]);

let dir = '';
let runId = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-metrics-'));
  const store = RunStore.open(path.join(dir, 'mimir.db'));
  try {
    runId = store.createRun({ name: 'metrics export', kind: 'pretrain', config: { mode: 'mae' } }).id;
    const events = [];
    for (let step = 1; step <= STEPS; step++) {
      const values: Record<string, number> = { loss: 2 / Math.sqrt(step) + 1e-7 * step, lr: 1.5e-4 * (step / STEPS) };
      if (step % 500 === 0) values.eval_accuracy = step / 10_000 + 1 / 3;
      for (const [key, value] of Object.entries(values)) stored.get(key)?.set(step, value);
      events.push({ type: 'metrics' as const, step, epoch: step / 100, values });
    }
    store.recordEvents(runId, events);
  } finally {
    store.close();
  }
});

function parseCsv(text: string): { header: string[]; rows: string[][] } {
  const lines = text.trimEnd().split('\n');
  return { header: (lines[0] ?? '').split(','), rows: lines.slice(1).map((line) => line.split(',')) };
}

describe('mimir metrics', () => {
  it('writes every point as wide CSV: step, then one column per key, empty where a key has no point', () => {
    const result = runMimir(['metrics', runId.slice(0, 8), '--data-dir', dir]);
    expect(result.status, result.stderr).toBe(0);
    const { header, rows } = parseCsv(result.stdout);
    expect(header).toEqual(['step', 'eval_accuracy', 'loss', 'lr']);
    expect(rows).toHaveLength(STEPS);
    rows.forEach((row, i) => {
      const step = i + 1;
      expect(Number(row[0])).toBe(step);
      header.slice(1).forEach((key, column) => {
        const cell = row[column + 1];
        const expected = stored.get(key)?.get(step);
        if (expected === undefined) expect(cell, `${key} at ${step}`).toBe('');
        // Stored as float64 in SQLite: the exact same number comes back.
        else expect(Number(cell), `${key} at ${step}`).toBe(expected);
      });
    });
  });

  it('--keys picks and orders the columns; --format json gives the series; --out writes a file', () => {
    const picked = runMimir(['metrics', runId, '--keys', 'lr,eval_accuracy', '--data-dir', dir]);
    expect(picked.status, picked.stderr).toBe(0);
    const { header, rows } = parseCsv(picked.stdout);
    expect(header).toEqual(['step', 'lr', 'eval_accuracy']);
    expect(rows[499]).toEqual([
      '500',
      String(stored.get('lr')?.get(500)),
      String(stored.get('eval_accuracy')?.get(500)),
    ]);

    const out = path.join(dir, 'metrics.json');
    const json = runMimir([
      'metrics',
      runId,
      '--format',
      'json',
      '--keys',
      'eval_accuracy',
      '--out',
      out,
      '--data-dir',
      dir,
    ]);
    expect(json.status, json.stderr).toBe(0);
    expect(json.stdout).toBe('');
    const parsed = JSON.parse(readFileSync(out, 'utf8')) as {
      runId: string;
      series: { key: string; steps: number[]; values: number[] }[];
    };
    expect(parsed.runId).toBe(runId);
    expect(parsed.series.map((s) => s.key)).toEqual(['eval_accuracy']);
    expect(parsed.series[0]?.steps).toEqual([500, 1000, 1500, 2000, 2500]);
    expect(parsed.series[0]?.values).toEqual(
      [500, 1000, 1500, 2000, 2500].map((s) => stored.get('eval_accuracy')?.get(s)),
    );
  });

  it('refuses a key the run did not record and an unknown run, saying which, exit 1', () => {
    const bad = runMimir(['metrics', runId, '--keys', 'loss,acc', '--data-dir', dir]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(`--keys: run ${runId} recorded no acc; its keys: eval_accuracy, loss, lr.`);
    const missing = runMimir(['metrics', 'zzzz', '--data-dir', dir]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('No run has an id starting with "zzzz"');
    const noStore = runMimir(['metrics', runId, '--data-dir', path.join(dir, 'nowhere')]);
    expect(noStore.status).toBe(1);
    expect(noStore.stderr).toContain('There is no experiment store at');
  });
});
