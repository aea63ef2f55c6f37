import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeParams } from '../../src/engine/model';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation } from '../../src/shared/store-types';
import { useBackend } from '../helpers/backend';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';
import { trainedClassifierCheckpoint } from '../engine/export/fixtures';

/**
 * The guard against a silent collapse on the run page: an evaluation of a classifier whose zero head
 * gives every class the same score (at chance, and no attack can flip it) shows, above its numbers,
 * that they are no evidence of robustness, with both reasons the stored report gives.
 */

const app = new WebApp();

beforeAll(async () => {
  await useBackend('cpu');
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

describe('an evaluation with no evidence of robustness (web mode, real engine)', () => {
  it('says so above the numbers, with the report’s reasons', async () => {
    const made = await trainedClassifierCheckpoint(mkdtempSync(path.join(os.tmpdir(), 'mimir-e2e-collapsed-')), {
      classes: 4,
      steps: 0,
      headInitStd: 0,
    });
    disposeParams(made.params);
    const run = await app.createRun('evaluate', 'collapsed classifier', {
      checkpoint: made.path,
      dataset: { kind: 'builtin', split: 'test', imageSize: 16, classes: 4 },
      examples: { count: 40 },
      attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
      maskingChecks: false,
    });
    await app.waitDone(run.id, 120_000);
    const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId: run.id });
    const report = stored?.results as EvaluationReport;
    expect(report.noEvidence.map((f) => f.kind)).toEqual(['at-chance', 'nothing-flipped']);

    const page = await app.openPage(`#/runs/${run.id}`);
    const banners = page.getByTestId('no-evidence');
    // The run view is loaded on first visit, then the evaluation: a busy machine needs more than a second.
    await expect.poll(() => banners.count(), { timeout: 30_000 }).toBe(2);
    expect(await banners.nth(0).getAttribute('data-kind')).toBe('at-chance');
    expect(await banners.nth(0).locator('strong').textContent()).toBe(
      'No evidence of robustness: the model is at chance',
    );
    expect(await banners.nth(0).locator('p').textContent()).toMatch(
      /^Natural accuracy 25\.00% is within 2 points of chance/,
    );
    expect(await banners.nth(1).getAttribute('data-kind')).toBe('nothing-flipped');
    expect(await banners.nth(1).locator('strong').textContent()).toBe(
      'No evidence of robustness: no attack flipped a single example',
    );
    expect(await banners.nth(1).locator('p').textContent()).toMatch(
      /^Under PGD-20, robust accuracy equals clean accuracy/,
    );
    // Prominent: above the headline numbers.
    const bannerBox = await banners.nth(0).boundingBox();
    const naturalBox = await page.getByTestId('natural-accuracy').boundingBox();
    expect(bannerBox && naturalBox ? bannerBox.y < naturalBox.y : false).toBe(true);
    await page.screenshot({ path: screenshotPath('evaluation-no-evidence'), fullPage: true });
    expect(app.problems).toEqual([]);
  }, 180_000);
});
