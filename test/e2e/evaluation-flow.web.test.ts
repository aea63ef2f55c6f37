import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { fillFields, openActionForm, startRun, waitRunStatus } from '../helpers/run-page';
import { MICRO_FINETUNE_FORM, microPretrain, webAppForFile } from '../helpers/web-app';

/**
 * From a pre-training run to robust accuracy in Chromium, with the real engine: "Fine-tune" on a done
 * MIMIR run opens the fine-tuning form on its checkpoint; "Evaluate" on the fine-tuned run opens the
 * evaluation form on that one; the evaluation's table, protocol, masking checks and corruption grid
 * match its stored report; "Loss landscape" maps the loss around the same checkpoint.
 */

const app = webAppForFile();
let page: Page;
let pretrain: Run;
let finetuneId = '';
let evaluationId = '';
const RUN_TIMEOUT = 60_000;

beforeAll(async () => {
  pretrain = await app.createRun('pretrain', 'e2e MIMIR to fine-tune', microPretrain('mimir'));
});

describe('evaluating a fine-tuned checkpoint in Chromium (web mode, real engine)', () => {
  it('fine-tunes a done pre-training run from its page, on its last checkpoint', async () => {
    const done = await app.waitDone(pretrain.id);
    page = await app.openPage(`#/runs/${pretrain.id}`);
    await openActionForm(page, 'finetune');
    await expect.poll(() => page.getByTestId('field-source.checkpoint').inputValue()).toBe(done.lastCheckpoint);
    expect(await page.getByTestId('new-run-source').textContent()).toContain('e2e MIMIR to fine-tune');
    // The pre-training run's data, and the method's own settings only.
    expect(await page.getByTestId('field-dataset.size').inputValue()).toBe('128');
    expect(await page.getByTestId('field-method').inputValue()).toBe('pgd-at');
    expect(await page.getByTestId('field-trades').count()).toBe(0);
    await page.getByTestId('field-method').selectOption('trades');
    await page.getByTestId('field-trades').waitFor();
    await page.getByTestId('field-method').selectOption('pgd-at');

    await fillFields(page, MICRO_FINETUNE_FORM);
    await page.getByTestId('form-valid').waitFor();
    expect(await page.getByTestId('summary-steps').textContent()).toContain('8 (4 per epoch)');
    await page.screenshot({ path: screenshotPath('evaluation-finetune-form'), fullPage: true });
    finetuneId = await startRun(page);
    const finetune = await app.call<Run>('runs.get', { id: finetuneId });
    expect(finetune.kind).toBe('finetune');
    expect(finetune.parentRunId).toBe(pretrain.id);
    await waitRunStatus(page, 'done', RUN_TIMEOUT);
    await expect.poll(() => page.getByTestId('chart-heldout_pgd_acc').getAttribute('data-points')).toBe('2');
  });

  it('evaluates the fine-tuned checkpoint and shows per-attack robust accuracy with its protocol', async () => {
    const finetune = await app.call<Run>('runs.get', { id: finetuneId });
    await openActionForm(page, 'evaluate');
    await expect.poll(() => page.getByTestId('field-checkpoint').inputValue()).toBe(finetune.lastCheckpoint);
    expect(await page.getByTestId('field-dataset.split').inputValue()).toBe('test');
    expect(await page.getByTestId('field-eps').inputValue()).toBe('8');
    // natural and pgd20 are ticked by default; add the corruptions, on two severities.
    expect(await page.getByTestId('attack-natural').isChecked()).toBe(true);
    expect(await page.getByTestId('attack-pgd20').isChecked()).toBe(true);
    await page.getByTestId('attack-corruptions').check();
    await page.getByTestId('field-attacks.2.severities').fill('1, 5');
    await page.getByTestId('field-attacks.2.severities').press('Tab');
    await page.getByTestId('field-examples.count').fill('16');
    await page.getByTestId('form-valid').waitFor();
    expect(await page.getByTestId('summary-attacks').textContent()).toBe('natural, pgd20, corruptions');
    await page.getByTestId('section-attacks').screenshot({ path: screenshotPath('evaluation-attack-picker') });
    evaluationId = await startRun(page);
    await waitRunStatus(page, 'done', RUN_TIMEOUT);

    const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId: evaluationId });
    const report = stored?.results as EvaluationReport;
    expect(report.examples.count).toBe(16);
    const table = page.getByTestId('attack-table');
    await table.waitFor();
    const percent = (value: number) => `${(value * 100).toFixed(2)}%`;
    for (const outcome of report.attacks) {
      const row = table.locator(`[data-attack="${outcome.key}"]`);
      expect((await row.getByTestId('robust-accuracy').textContent())?.trim()).toContain(
        percent(outcome.robustAccuracy),
      );
    }
    const pgd = table.locator('[data-attack="pgd20"]');
    expect(await pgd.locator('.protocol').textContent()).toContain(
      'ε 8/255 · 20 steps · 1 restart · best iterate per example · seed 0 · n 16',
    );
    expect(await page.getByTestId('natural-accuracy').textContent()).toBe(percent(report.naturalAccuracy));
    expect(await page.getByTestId('worst-case').textContent()).toBe(percent(report.worstCase?.robustAccuracy ?? -1));
    await page.getByTestId('masking-checks').waitFor();
    // Every corruption type, at the two severities asked for.
    const corruptions = page.getByTestId('corruption-table');
    expect(await corruptions.locator('tbody tr').count()).toBe(9);
    expect(await corruptions.locator('thead th').allTextContents()).toEqual([
      'Corruption',
      'Severity 1',
      'Severity 5',
      'Mean',
    ]);
    // Flipped examples: their images with predicted classes, or a word that there are none.
    const flipped = report.attacks.reduce((sum, outcome) => sum + (outcome.flipped.images?.indices.length ?? 0), 0);
    if (flipped > 0) await expect.poll(() => page.getByTestId('flipped-example').count()).toBeGreaterThan(0);
    else await page.getByTestId('no-flipped').waitFor();
    // The run's output is its report (typed), not a checkpoint of the evaluation.
    const output = page.getByTestId('run-output');
    expect(await output.getAttribute('data-kind')).toBe('report');
    expect(await output.textContent()).toMatch(/report\.json$/);
    await page.screenshot({ path: screenshotPath('evaluation-report'), fullPage: true });

    // The fine-tuned run lists it. The printed URL's token is answered with a redirect, so this is a
    // full page load (the app starts again), not a change of route: wait as long as a start takes.
    await page.goto(`${app.url}#/runs/${finetuneId}`);
    expect(page.url()).toBe(new URL(`/#/runs/${finetuneId}`, app.url).href);
    await expect.poll(() => page.getByTestId('model-evaluations').locator('li').count(), { timeout: 30_000 }).toBe(1);
  });

  it('maps the loss landscape around the fine-tuned checkpoint', async () => {
    await openActionForm(page, 'landscape');
    await page.getByTestId('field-grid').fill('5');
    await page.getByTestId('field-examples').fill('32');
    await page.getByTestId('form-valid').waitFor();
    expect(await page.getByTestId('summary-grid').textContent()).toContain('5 × 5 = 25 points');
    await startRun(page);
    await waitRunStatus(page, 'done', RUN_TIMEOUT);
    const plot = page.getByTestId('landscape-plot');
    await expect.poll(() => plot.getAttribute('data-points')).toBe('25');
    expect(Number(await page.getByTestId('landscape-centre').textContent())).toBeGreaterThan(0);
    // Its output is its landscape.json, not the model it was computed around.
    expect(await page.getByTestId('run-output').getAttribute('data-kind')).toBe('landscape');
    expect(await page.getByTestId('run-output').textContent()).toMatch(/landscape\.json$/);
    await page.screenshot({ path: screenshotPath('evaluation-landscape'), fullPage: true });

    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
