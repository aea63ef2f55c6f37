import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricSeries, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';

/**
 * The form's "Read metrics every (steps)" (metricsEvery), in Chromium against the real server and
 * engine: the run reads its metrics every 3 steps, and the store still gets every step's point.
 */

const app = new WebApp();
let page: Page;

beforeAll(async () => {
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

describe('metricsEvery in the new-run form (web mode, real engine)', () => {
  it('is set in the form, and the run stores a metrics point for every step', async () => {
    page = await app.openPage('#/new');
    const fill = (testId: string, value: string) => page.getByTestId(testId).fill(value);
    await page.getByTestId('field-mode').selectOption('mae');
    await page.getByTestId('field-model').selectOption('micro');
    await fill('field-dataset.size', '64');
    await fill('field-dataset.imageSize', '16');
    await fill('field-epochs', '2');
    await fill('field-batchSize', '8');
    await fill('field-metricsEvery', '3');
    await fill('run-name-input', 'e2e metrics every 3 steps');
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('section-outputs').screenshot({ path: screenshotPath('form-metrics-every') });

    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    const run: Run = await app.waitDone(id, 120_000);
    expect(run.config).toMatchObject({ metricsEvery: 3 });
    const [loss] = await app.call<MetricSeries[]>('runs.metrics', { ids: [id], keys: ['loss'] });
    // 8 steps per epoch, 2 epochs: every step, read in groups of 3 (and at each epoch's end).
    expect(loss?.steps).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(loss?.values.every((v) => v !== null && Number.isFinite(v))).toBe(true);

    // The fine-tuning form has the same field in the same section.
    const finetune = await app.openPage('#/new?kind=finetune');
    await finetune.getByTestId('field-metricsEvery').fill('2');
    await finetune.getByTestId('section-outputs').screenshot({ path: screenshotPath('finetune-form-metrics-every') });
    await finetune.close();
    expect(app.problems).toEqual([]);
  }, 180_000);
});
