import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { modelConfigFromPreset } from '../../src/shared/model-config';
import { formatModelSummary } from '../../src/shared/model-summary';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { fillFields, startRun, waitRunStatus } from '../helpers/run-page';
import { MICRO_FORM, microFinetuneAndEvaluate, microMimirForm, webAppForFile } from '../helpers/web-app';

/**
 * A ViT + ConvStem end to end in Chromium with the real engine: a micro MIMIR pre-training started from
 * the New-run form (the convstem-micro preset, its size in the model help), PGD-AT fine-tuning from its
 * checkpoint, and an evaluation of the fine-tuned model.
 */

const app = webAppForFile();
let page: Page;
let pretrainId = '';
const RUN_TIMEOUT = 120_000;

describe('ViT + ConvStem from the New-run form in Chromium (web mode, real engine)', () => {
  it('pre-trains a micro ConvStem with MIMIR from the form', async () => {
    page = await microMimirForm(app, 'convstem-micro');
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

    await fillFields(page, MICRO_FORM);
    await page.getByTestId('run-name-input').fill('e2e ConvStem MIMIR');
    await page.getByTestId('form-valid').waitFor();
    // The run summary beside the form gives the model's size too.
    expect((await page.getByTestId('summary-model').textContent())?.trim()).toBe(
      formatModelSummary(modelConfigFromPreset('convstem-micro', 16)),
    );
    await page.screenshot({ path: screenshotPath('convstem-new-form'), fullPage: true });
    pretrainId = await startRun(page);
    await waitRunStatus(page, 'done', RUN_TIMEOUT);
    for (const kind of ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']) {
      await page.getByTestId(`preview-${kind}`).locator('img').waitFor();
    }
    const run = await app.call<Run>('runs.get', { id: pretrainId });
    expect(run.summary?.mi).toBeGreaterThan(0);
    expect((run.config as { model: unknown }).model).toBe('convstem-micro');
    await page.screenshot({ path: screenshotPath('convstem-pretrain-done'), fullPage: true });
  });

  it('fine-tunes it with PGD-AT and evaluates the result', async () => {
    await microFinetuneAndEvaluate(app, page, pretrainId, RUN_TIMEOUT);
    await page.screenshot({ path: screenshotPath('convstem-evaluation'), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
