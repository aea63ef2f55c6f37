import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { fillFields, startRun, waitRunStatus } from '../helpers/run-page';
import { MICRO_FORM, microFinetuneAndEvaluate, microMimirForm, webAppForFile } from '../helpers/web-app';

/**
 * ConViT and CaiT end to end in Chromium with the real engine (issue 17): for each, a micro MIMIR
 * pre-training started from the New-run form (its preset, its size in the model help), PGD-AT
 * fine-tuning from its checkpoint and an evaluation; then Compare shows a ViT and the ConViT
 * pre-training side by side.
 */

const app = webAppForFile();
let page: Page;
const pretrained = new Map<string, string>();
const RUN_TIMEOUT = 240_000;

/** A micro MIMIR pre-training of `preset` from the New-run form; returns its run id. */
async function pretrainFromForm(preset: string, name: string, help: RegExp): Promise<string> {
  page = await microMimirForm(app, preset);
  await expect.poll(() => page.getByText(help).count()).toBeGreaterThan(0);
  await fillFields(page, MICRO_FORM);
  await page.getByTestId('run-name-input').fill(name);
  await page.getByTestId('form-valid').waitFor();
  await page.screenshot({ path: screenshotPath(`${preset}-new-form`), fullPage: true });
  const id = await startRun(page);
  await waitRunStatus(page, 'done', RUN_TIMEOUT);
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
    await microFinetuneAndEvaluate(app, page, pretrained.get(preset), RUN_TIMEOUT);
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
