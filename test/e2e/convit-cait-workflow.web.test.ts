import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';

/**
 * ConViT and CaiT end to end in Chromium with the real engine (issue 17): for each, a micro MIMIR
 * pre-training started from the New-run form (its preset, its size in the model help), PGD-AT
 * fine-tuning from its checkpoint and an evaluation; then Compare shows a ViT and the ConViT
 * pre-training side by side.
 */

const app = new WebApp();
let page: Page;
const pretrained = new Map<string, string>();

beforeAll(async () => {
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

function idFromUrl(): string {
  return decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
}

async function waitStatus(status: string, timeout = 240_000): Promise<void> {
  await page
    .getByTestId('run-view')
    .getByTestId('run-status')
    .and(page.locator(`[data-status="${status}"]`))
    .waitFor({ timeout });
}

/** A micro MIMIR pre-training of `preset` from the New-run form; returns its run id. */
async function pretrainFromForm(preset: string, name: string, help: RegExp): Promise<string> {
  page = await app.openPage('#/new?preset=quick-demo-mimir');
  await expect.poll(() => page.getByTestId('field-mode').inputValue()).toBe('mimir');
  await page.getByTestId('field-dataset.size').fill('128');
  await page.getByTestId('field-dataset.imageSize').fill('16');
  await page.getByTestId('field-model').selectOption(preset);
  await expect.poll(() => page.getByText(help).count()).toBeGreaterThan(0);
  await page.getByTestId('field-epochs').fill('2');
  await page.getByTestId('field-batchSize').fill('32');
  await page.getByTestId('run-name-input').fill(name);
  await page.getByTestId('form-valid').waitFor();
  await page.screenshot({ path: screenshotPath(`${preset}-new-form`), fullPage: true });
  await page.getByTestId('start-run').click();
  await page.getByTestId('run-view').waitFor();
  const id = idFromUrl();
  await waitStatus('done');
  for (const kind of ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']) {
    await page.getByTestId(`preview-${kind}`).locator('img').waitFor();
  }
  const run = await app.call<Run>('runs.get', { id });
  expect(run.summary?.mi).toBeGreaterThan(0);
  expect((run.config as { model: unknown }).model).toBe(preset);
  return id;
}

describe.each([
  { preset: 'convit-micro', title: 'ConViT', help: /ConViT .*parameters, .*FLOPs per 16 px image/ },
  { preset: 'cait-micro', title: 'CaiT', help: /CaiT .*parameters, .*FLOPs per 16 px image/ },
])('$title from the New-run form in Chromium (web mode, real engine)', ({ preset, title, help }) => {
  it(`pre-trains a micro ${title} with MIMIR from the form`, async () => {
    pretrained.set(preset, await pretrainFromForm(preset, `e2e ${title} MIMIR`, help));
    await page.screenshot({ path: screenshotPath(`${preset}-pretrain-done`), fullPage: true });
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
    const finetuneId = idFromUrl();
    await waitStatus('done');
    await expect.poll(() => page.getByTestId('chart-heldout_pgd_acc').getAttribute('data-points')).toBe('2');
    const finetune = await app.call<Run>('runs.get', { id: finetuneId });
    expect(finetune.parentRunId).toBe(pretrained.get(preset));

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
    expect(report.attacks.map((a) => a.key)).toEqual(['natural', 'pgd20']);
    const table = page.getByTestId('attack-table');
    await table.waitFor();
    for (const outcome of report.attacks) {
      const row = table.locator(`[data-attack="${outcome.key}"]`);
      expect((await row.getByTestId('robust-accuracy').textContent())?.trim()).toContain(
        `${(outcome.robustAccuracy * 100).toFixed(2)}%`,
      );
    }
    await page.screenshot({ path: screenshotPath(`${preset}-evaluation`), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});

describe('Compare: a ViT and a ConViT side by side', () => {
  it('overlays the two pre-trainings', async () => {
    const vit = await pretrainFromForm('micro', 'e2e ViT MIMIR', /parameters, .*FLOPs per 16 px image/);
    const convit = pretrained.get('convit-micro');
    expect(convit).toBeDefined();
    await page.close();
    page = await app.openPage(`#/compare?runs=${vit},${convit ?? ''}`);
    await page.getByTestId('compare-view').waitFor();
    expect(await page.getByTestId('compare-run').count()).toBe(2);
    await expect
      .poll(() => page.getByTestId('compare-chart-mi').getAttribute('data-series'), { timeout: 30_000 })
      .toBe('2');
    await expect.poll(() => page.getByTestId('compare-preview-reconstruction').locator('img').count()).toBe(2);
    await page.screenshot({ path: screenshotPath('compare-vit-vs-convit'), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
