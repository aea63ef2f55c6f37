import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { expectAttackTable, runIdFromUrl } from '../helpers/run-page';
import { webAppForFile } from '../helpers/web-app';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * Issue 18 in the app (Chromium, web mode, the real service), for a micro ConvNeXt and a micro Swin, all
 * from the form: chosen in the New-run form the model is refused on the tfjs engine with the reason, then
 * runs MIMIR pre-training on the PyTorch engine to done; the run page's Fine-tune action fine-tunes it with
 * PGD-AT on the PyTorch engine; the fine-tuned run's Evaluate action opens the evaluation form, which says
 * the PyTorch engine evaluates that checkpoint, and the evaluation runs there.
 */

const app = webAppForFile();

/** Waits for the run page to show a finished run; a failed one fails the test with its error. */
async function waitDone(page: Page): Promise<Run> {
  await page
    .getByTestId('run-view')
    .getByTestId('run-status')
    .and(page.locator('[data-status="done"], [data-status="failed"]'))
    .waitFor({ timeout: 300_000 });
  const run = await app.call<Run>('runs.get', { id: runIdFromUrl(page) });
  expect(run.status, run.error ?? '').toBe('done');
  return run;
}

const found = findPythonWithTorch();

describe.each([
  {
    preset: 'convnext-micro',
    encoder: 'convnext',
    title: 'ConvNeXt',
    help: /ConvNeXt for tests and demos.*parameters/,
  },
  { preset: 'swin-micro', encoder: 'swin', title: 'Swin', help: /Swin for tests and demos.*parameters/ },
])('a $title run from the form (Chromium, web mode)', ({ preset, encoder, title, help }) => {
  it('is refused on tfjs naming the PyTorch engine, pre-trains with MIMIR, fine-tunes with PGD-AT and evaluates, all on torch from the form', async () => {
    if (!found.python) throw new Error(found.reason);
    const page = await app.newPage({ width: 1440, height: 900 });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));

    // Pre-training from the New-run form.
    await page.goto(`${app.url}#/new`);
    await page.getByTestId('preset-quick-demo-mimir').click();
    await page.getByTestId('field-model').selectOption(preset);
    await page.getByTestId('field-dataset.size').fill('16');
    await page.getByTestId('field-dataset.imageSize').fill('32');
    await page.getByTestId('field-epochs').fill('1');
    await page.getByTestId('field-batchSize').fill('8');
    await page.getByTestId('run-name-input').fill(`e2e ${title} MIMIR`);
    await page.getByTestId('form-problems').waitFor();
    await page.getByText(`The ${encoder} encoder runs on the PyTorch engine only`).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: screenshotPath(`hier-${preset}-tfjs-refused`), fullPage: true });
    await page.getByTestId('field-engine.name').selectOption('torch');
    await page.getByTestId('field-engine.device').selectOption('cpu');
    await page.getByTestId('form-valid').waitFor();
    // The model's help shows the encoder's size (model-summary.ts).
    await page.getByText(help).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: screenshotPath(`hier-${preset}-form-torch`), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const pretrained = await waitDone(page);
    const points = async (key: string) => Number(await page.getByTestId(`chart-${key}`).getAttribute('data-points'));
    await expect.poll(() => points('mi'), { timeout: 30_000 }).toBeGreaterThan(0);
    // The encoder's own masked autoencoder draws the reconstruction previews, as a ViT's does.
    const previews = page.getByTestId('preview-panel');
    await previews.getByTestId('preview-reconstruction').waitFor({ timeout: 30_000 });
    await expect.poll(() => previews.getByTestId('preview-step').textContent()).toMatch(/^\s*step 2 /);
    await page.screenshot({ path: screenshotPath(`hier-${preset}-pretrain-done`), fullPage: true });
    expect(pretrained.backend).toBe('torch');
    expect((pretrained.config as { model: unknown }).model).toBe(preset);
    expect(pretrained.summary?.mi).toBeGreaterThan(0);

    // PGD-AT fine-tuning from the run page's Fine-tune action.
    await page.getByTestId('action-finetune').click();
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="finetune"]')).waitFor();
    expect(await page.getByTestId('field-method').inputValue()).toBe('pgd-at');
    await page.getByTestId('field-epochs').fill('1');
    await page.getByTestId('field-batchSize').fill('8');
    await page.getByTestId('field-attack.steps').fill('1');
    await page.getByTestId('field-heldOut.size').fill('8');
    await page.getByTestId('field-heldOut.pgdSteps').fill('2');
    await page.getByTestId('field-engine.name').selectOption('torch');
    await page.getByTestId('field-engine.device').selectOption('cpu');
    await page.getByTestId('form-valid').waitFor();
    await page.screenshot({ path: screenshotPath(`hier-${preset}-finetune-form`), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const finetuned = await waitDone(page);
    expect(finetuned.kind).toBe('finetune');
    expect(finetuned.backend).toBe('torch');
    expect(finetuned.parentRunId).toBe(pretrained.id);
    expect((finetuned.config as { method: unknown }).method).toBe('pgd-at');
    await page.screenshot({ path: screenshotPath(`hier-${preset}-finetune-done`), fullPage: true });

    // Evaluation from the fine-tuned run's Evaluate action; the form says which engine evaluates it.
    await page.getByTestId('action-evaluate').click();
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="evaluate"]')).waitFor();
    await expect.poll(() => page.getByTestId('field-checkpoint').inputValue()).toBe(finetuned.lastCheckpoint);
    const line = page.getByTestId('field-checkpoint-engine');
    await expect
      .poll(() => line.textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^Evaluated on the PyTorch engine: the ${encoder} encoder runs there only`));
    await page.getByTestId('field-examples.count').fill('8');
    // The corruptions run there too (images corrupted on the Node side), here at severity 2.
    await page.getByTestId('attack-corruptions').check();
    await page.getByTestId('field-attacks.2.severities').fill('2');
    await page.getByTestId('field-attacks.2.severities').press('Tab');
    await page.getByTestId('form-valid').waitFor();
    expect(await page.getByTestId('summary-attacks').textContent()).toBe('natural, pgd20, corruptions');
    await line.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath(`hier-${preset}-evaluate-form`), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const evaluated = await waitDone(page);
    expect(evaluated.backend).toBe('torch');
    const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId: evaluated.id });
    const report = stored?.results as EvaluationReport;
    expect(report.examples.count).toBe(8);
    expect(report.attacks.map((a) => a.key)).toEqual(['natural', 'pgd20']);
    // The same 8 test images as the fine-tuning's held-out set: the same natural accuracy.
    expect(evaluated.summary?.natural_accuracy).toBe(finetuned.summary?.heldout_natural_acc);
    const [natural, pgd] = report.attacks;
    expect(pgd?.robustAccuracy).toBeLessThanOrEqual(natural?.robustAccuracy ?? -1);
    await expectAttackTable(page, report);
    // The gradient-masking checks it ran (not the black-box one, which needs Square) and the flipped examples.
    const checks = page.getByTestId('masking-checks');
    await checks.waitFor();
    const names = (await checks.locator('li strong').allTextContents()).map((t) => t.trim());
    expect(names).toEqual(['Zero gradients', 'Randomness', 'Unbounded radius']);
    const flipped = page.getByTestId('flipped-examples');
    if ((pgd?.flipped.count ?? 0) > 0) {
      await expect
        .poll(() => flipped.getByTestId('flipped-example').count())
        .toBe(Math.min(pgd?.flipped.count ?? 0, 8));
    } else {
      await flipped.getByTestId('no-flipped').waitFor();
    }
    // The corruption table, as a ViT's: every type at the severity asked for, with its mean.
    expect(report.corruptions?.cells.map((c) => c.severity)).toEqual(Array<number>(9).fill(2));
    const corruptions = page.getByTestId('corruption-table');
    expect(await corruptions.locator('tbody tr').count()).toBe(9);
    expect(await corruptions.locator('thead th').allTextContents()).toEqual(['Corruption', 'Severity 2', 'Mean']);
    await page.screenshot({ path: screenshotPath(`hier-${preset}-evaluation`), fullPage: true });
    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  }, 900_000);
});
