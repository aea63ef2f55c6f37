import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricSeries, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { microPretrain, WebApp } from '../helpers/web-app';

/**
 * The run page's CSV exports in Chromium against the real server and engine: "CSV (all metrics)"
 * and a chart's "CSV" are browser downloads whose rows equal the points the store holds.
 */

const app = new WebApp();
let page: Page;
let run: Run;
/** 128 images / batch 32 = 4 steps per epoch, 2 epochs. */
const STEPS = 8;

beforeAll(async () => {
  await app.start();
  run = await app.createRun('pretrain', 'e2e metrics export', microPretrain('mimir'));
  await app.waitDone(run.id, 120_000);
}, 180_000);

afterAll(async () => {
  await app.stop();
});

function parseCsv(text: string): { header: string[]; rows: string[][] } {
  const lines = text.trimEnd().split('\n');
  return { header: (lines[0] ?? '').split(','), rows: lines.slice(1).map((line) => line.split(',')) };
}

/** The stored value of every key at every step, read through the API (no downsampling at this size). */
async function storedPoints(): Promise<Map<string, Map<number, number | null>>> {
  const keys = await app.call<string[]>('runs.metricKeys', { ids: [run.id] });
  const series = await app.call<MetricSeries[]>('runs.metrics', { ids: [run.id], keys });
  return new Map(series.map((s) => [s.key, new Map(s.steps.map((step, i) => [step, s.values[i] ?? null]))]));
}

async function download(testId: string, within?: string): Promise<{ name: string; text: string }> {
  const scope = within ? page.getByTestId(within) : page;
  const [file] = await Promise.all([page.waitForEvent('download'), scope.getByTestId(testId).click()]);
  return { name: file.suggestedFilename(), text: readFileSync(await file.path(), 'utf8') };
}

describe('metric series as CSV from the run page (web mode, real engine)', () => {
  it('downloads every metric, and one chart, with the stored points', async () => {
    page = await app.openPage(`#/runs/${run.id}`);
    await expect
      .poll(async () => Number(await page.getByTestId('chart-mi').getAttribute('data-points')), { timeout: 30_000 })
      .toBe(STEPS);
    const stored = await storedPoints();

    const all = await download('metrics-csv');
    expect(all.name).toBe(`run-${run.id.slice(0, 8).toLowerCase()}-metrics.csv`);
    const { header, rows } = parseCsv(all.text);
    expect(header[0]).toBe('step');
    expect([...header.slice(1)].sort()).toEqual([...stored.keys()].sort());
    expect(header).toContain('mi');
    const steps = [...new Set([...stored.values()].flatMap((points) => [...points.keys()]))].sort((a, b) => a - b);
    expect(rows.map((row) => Number(row[0]))).toEqual(steps);
    for (const row of rows) {
      const step = Number(row[0]);
      header.slice(1).forEach((key, column) => {
        const cell = row[column + 1];
        const value = stored.get(key)?.get(step);
        if (value === undefined) expect(cell, `${key} at ${step}`).toBe('');
        else if (value === null) expect(cell, `${key} at ${step}`).toBe('NaN');
        else expect(Number(cell), `${key} at ${step}`).toBe(value);
      });
    }

    const mi = await download('chart-csv', 'chart-mi');
    expect(mi.name).toBe(`run-${run.id.slice(0, 8).toLowerCase()}-mi.csv`);
    const chart = parseCsv(mi.text);
    expect(chart.header).toEqual(['step', 'mi']);
    expect(chart.rows).toHaveLength(STEPS);
    for (const [step, cell] of chart.rows) expect(Number(cell)).toBe(stored.get('mi')?.get(Number(step)));

    await page.getByTestId('metrics-csv').scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('run-page-metrics-csv') });
    expect(app.problems).toEqual([]);
  });
});
