import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import { modelConfigFromPreset } from '../../src/shared/model-config';
import { formatModelSummary } from '../../src/shared/model-summary';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';

/**
 * A ViT + ConvStem end to end in Chromium with the real engine: a micro MIMIR pre-training started from
 * the New-run form (the convstem-micro preset, its size in the model help), PGD-AT fine-tuning from its
 * checkpoint, and an evaluation of the fine-tuned model.
 */

const app = new WebApp();
let page: Page;
let pretrainId = '';
let finetuneId = '';

beforeAll(async () => {
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

function idFromUrl(): string {
  return decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
}

async function waitStatus(status: string, timeout = 120_000): Promise<void> {
  await page
    .getByTestId('run-view')
    .getByTestId('run-status')
    .and(page.locator(`[data-status="${status}"]`))
    .waitFor({ timeout });
}

describe('ViT + ConvStem from the New-run form in Chromium (web mode, real engine)', () => {
  it('pre-trains a micro ConvStem with MIMIR from the form', async () => {
    page = await app.openPage('#/new?preset=quick-demo-mimir');
    await expect.poll(() => page.getByTestId('field-mode').inputValue()).toBe('mimir');
    await page.getByTestId('field-dataset.size').fill('128');
    await page.getByTestId('field-dataset.imageSize').fill('16');
    await page.getByTestId('field-model').selectOption('convstem-micro');
    // The preset explains itself and gives its size at the dataset's image size.
    await expect
      .poll(() => page.getByText(/ConvStem .*parameters, .*FLOPs per 16 px image/).count())
      .toBeGreaterThan(0);

    // As a custom model, the encoder is a field of its own: kind, stem widths, Table VI's option.
    await page.getByTestId('field-model-option-custom').click();
    await expect.poll(() => page.getByTestId('field-model.encoder.kind').inputValue()).toBe('convstem');
    await page.getByTestId('section-training').screenshot({ path: screenshotPath('convstem-custom-model') });
    await page.getByTestId('field-model-option-preset').click();
    await page.getByTestId('field-model').selectOption('convstem-micro');

    await page.getByTestId('field-epochs').fill('2');
    await page.getByTestId('field-batchSize').fill('32');
    await page.getByTestId('run-name-input').fill('e2e ConvStem MIMIR');
    await page.getByTestId('form-valid').waitFor();
    // The run summary beside the form gives the model's size too.
    expect((await page.getByTestId('summary-model').textContent())?.trim()).toBe(
      formatModelSummary(modelConfigFromPreset('convstem-micro', 16)),
    );
    await page.screenshot({ path: screenshotPath('convstem-new-form'), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    pretrainId = idFromUrl();
    await waitStatus('done');
    for (const kind of ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']) {
      await page.getByTestId(`preview-${kind}`).locator('img').waitFor();
    }
    const run = await app.call<Run>('runs.get', { id: pretrainId });
    expect(run.summary?.mi).toBeGreaterThan(0);
    expect((run.config as { model: unknown }).model).toBe('convstem-micro');
    await page.screenshot({ path: screenshotPath('convstem-pretrain-done'), fullPage: true });
  });

  it('fine-tunes it with PGD-AT and evaluates the result', async () => {
    await page.getByTestId('action-finetune').click();
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="finetune"]')).waitFor();
    expect(await page.getByTestId('field-method').inputValue()).toBe('pgd-at');
    await page.getByTestId('field-epochs').fill('2');
    await page.getByTestId('field-batchSize').fill('32');
    await page.getByTestId('field-heldOut.size').fill('16');
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    finetuneId = idFromUrl();
    await waitStatus('done');
    await expect.poll(() => page.getByTestId('chart-heldout_pgd_acc').getAttribute('data-points')).toBe('2');
    const finetune = await app.call<Run>('runs.get', { id: finetuneId });
    expect(finetune.parentRunId).toBe(pretrainId);

    await page.getByTestId('action-evaluate').click();
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="evaluate"]')).waitFor();
    await expect.poll(() => page.getByTestId('field-checkpoint').inputValue()).toBe(finetune.lastCheckpoint);
    await page.getByTestId('field-examples.count').fill('16');
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const evaluationId = idFromUrl();
    await waitStatus('done');
    const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId: evaluationId });
    const report = stored?.results as EvaluationReport;
    expect(report.examples.count).toBe(16);
    const table = page.getByTestId('attack-table');
    await table.waitFor();
    for (const outcome of report.attacks) {
      const row = table.locator(`[data-attack="${outcome.key}"]`);
      expect((await row.getByTestId('robust-accuracy').textContent())?.trim()).toContain(
        `${(outcome.robustAccuracy * 100).toFixed(2)}%`,
      );
    }
    expect(report.attacks.map((a) => a.key)).toEqual(['natural', 'pgd20']);
    await page.screenshot({ path: screenshotPath('convstem-evaluation'), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
