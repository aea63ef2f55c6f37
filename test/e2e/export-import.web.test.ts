import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';

/**
 * Export and import in Chromium with the real engine: a fine-tuned micro classifier exported from its
 * run page as safetensors with timm's names (the dialog shows the file and how to load it in PyTorch),
 * refused over an existing file unless asked, imported back from the Checkpoints page, and evaluated:
 * the imported model classifies every example exactly as the original. Then the dataset browser.
 */

const app = new WebApp();
let page: Page;
let finetune: Run;
let exported = '';
let imported = '';

const EVALUATION = {
  dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
  examples: { count: 32 },
  attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
};

beforeAll(async () => {
  await app.start();
  finetune = await app.createRun('finetune', 'e2e classifier to export', {
    method: 'natural',
    source: { kind: 'scratch', model: 'micro' },
    dataset: { kind: 'builtin', size: 128, imageSize: 16 },
    epochs: 2,
    batchSize: 32,
    heldOut: { size: 0 },
  });
});
afterAll(async () => {
  await app.stop();
});

async function evaluation(runId: string): Promise<EvaluationReport> {
  await app.waitDone(runId);
  const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId });
  if (!stored) throw new Error(`run ${runId} stored no evaluation`);
  return stored.results as EvaluationReport;
}

describe('export and import in Chromium (web mode, real engine)', () => {
  it('exports a fine-tuned checkpoint as timm-named safetensors and shows how to load it', async () => {
    finetune = await app.waitDone(finetune.id);
    page = await app.openPage(`#/runs/${finetune.id}`);
    await page.getByTestId('action-export').click();
    const dialog = page.getByTestId('export-dialog');
    await dialog.waitFor();
    await expect.poll(() => page.getByTestId('export-checkpoint').inputValue()).toBe(finetune.lastCheckpoint);
    expect(await page.getByTestId('export-naming-timm').isChecked()).toBe(true);
    await expect
      .poll(() => page.getByTestId('export-file').inputValue())
      .toBe(path.join(app.dataDir, 'exports', 'e2e-classifier-to-export-step8-timm.safetensors'));
    await page.screenshot({ path: screenshotPath('export-dialog') });

    exported = path.join(app.dataDir, 'elsewhere', 'classifier.safetensors');
    await page.getByTestId('export-file').fill(exported);
    await page.getByTestId('export-write').click();
    await page.getByTestId('export-done').waitFor();
    expect(await page.getByTestId('export-outcome-file').textContent()).toBe(exported);
    const snippet = await page.getByTestId('export-pytorch').textContent();
    expect(snippet).toContain('model = VisionTransformer(**config["model_args"])');
    expect(snippet).toContain('model.load_state_dict(state)');
    expect(snippet).toContain(JSON.stringify(exported));
    await page.screenshot({ path: screenshotPath('export-done') });

    // The files: weights with timm's names, and the config with timm's model args.
    const config = JSON.parse(readFileSync(exported.replace(/\.safetensors$/, '.json'), 'utf8')) as {
      naming: string;
      model_args: { num_classes: number; global_pool: string };
    };
    expect(config.naming).toBe('timm');
    expect(config.model_args).toMatchObject({ num_classes: 10, global_pool: 'avg' });
    const header = readFileSync(exported);
    const names = Object.keys(JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()));
    expect(names).toEqual(
      expect.arrayContaining(['patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'head.weight']),
    );

    // Writing over it needs a yes.
    await page.getByRole('button', { name: 'Export another' }).click();
    await page.getByTestId('export-file').fill(exported);
    await page.getByTestId('export-write').click();
    await expect.poll(() => page.getByTestId('export-error').textContent()).toContain('exists');
    expect(await page.getByTestId('export-write').isDisabled()).toBe(true);
    await page.getByTestId('export-overwrite').check();
    await page.getByTestId('export-write').click();
    await page.getByTestId('export-done').waitFor();
    await page.getByTestId('export-close').click();
  });

  it('imports the file back into a checkpoint that classifies exactly as the original', async () => {
    await page.getByTestId('nav-checkpoints').click();
    await page.getByTestId('checkpoints-view').waitFor();
    await page.getByTestId('import-file').fill(exported);
    await page.getByTestId('import-run').click();
    await page.getByTestId('import-done').waitFor();
    imported = (await page.getByTestId('import-checkpoint').textContent()) ?? '';
    expect(imported).toBe(path.join(app.dataDir, 'imports', 'classifier', 'imported'));
    expect(existsSync(path.join(imported, 'checkpoint.json'))).toBe(true);
    await expect.poll(() => page.locator(`[data-path="${imported}"]`).count()).toBe(1);
    await page.screenshot({ path: screenshotPath('export-checkpoints-imported'), fullPage: true });

    // Evaluate the imported checkpoint from the UI, the original through the API, with one protocol.
    await page.getByTestId('import-evaluate').click();
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="evaluate"]')).waitFor();
    expect(await page.getByTestId('field-checkpoint').inputValue()).toBe(imported);
    await page.getByTestId('field-dataset.split').selectOption('test');
    await page.getByTestId('field-dataset.size').fill('64');
    await page.getByTestId('field-dataset.imageSize').fill('16');
    await page.getByTestId('field-examples.count').fill('32');
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const importedRun = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    const original = await app.createRun('evaluate', 'e2e original', {
      checkpoint: finetune.lastCheckpoint,
      ...EVALUATION,
    });
    const [mine, theirs] = [await evaluation(importedRun), await evaluation(original.id)];
    expect(mine.request.examples).toEqual(theirs.request.examples);
    expect(mine.naturalAccuracy).toBe(theirs.naturalAccuracy);
    expect(mine.worstCase?.brokenBy).toEqual(theirs.worstCase?.brokenBy);
    await page.getByTestId('attack-table').waitFor();
    await page.screenshot({ path: screenshotPath('export-imported-evaluated'), fullPage: true });
    await page.close();
  });

  it('browses the built-in dataset by page and class, each image at full size', async () => {
    page = await app.openPage('#/datasets');
    await expect.poll(() => page.getByTestId('dataset-tile').count(), { timeout: 15_000 }).toBe(100);
    expect(await page.getByTestId('page-info').textContent()).toContain('page 1 of 50 · 5,000 images');
    expect(await page.getByTestId('dataset-classes').textContent()).toContain('One filled, nearly round disc');
    await page.getByTestId('page-next').click();
    await expect.poll(() => page.getByTestId('page-info').textContent(), { timeout: 60_000 }).toContain('page 2 of 50');
    expect(await page.getByTestId('dataset-tile').first().getByRole('button').getAttribute('aria-label')).toMatch(
      /^Image 100: /,
    );

    await page.getByTestId('class-filter').selectOption('5');
    await expect
      .poll(() => page.getByTestId('page-info').textContent(), { timeout: 60_000 })
      .toContain('page 1 of 5 · 500 images');
    const labels = await page
      .getByTestId('dataset-tile')
      .evaluateAll((tiles) => tiles.map((tile) => tile.getAttribute('data-label')));
    expect(labels).toHaveLength(100);
    expect(new Set(labels)).toEqual(new Set(['5']));
    await page.screenshot({ path: screenshotPath('export-datasets-disc'), fullPage: true });

    await page.getByTestId('dataset-tile').first().getByRole('button').click();
    await page.getByTestId('image-zoom').waitFor();
    expect(
      await page.getByTestId('zoom-image').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
    ).toBe(32);
    await page.screenshot({ path: screenshotPath('export-datasets-zoom') });
    await page.getByTestId('zoom-close').click();

    // Another source: a missing CIFAR-10 folder says where it looked.
    await page.getByTestId('field-dataset.kind').selectOption('cifar10');
    await page.getByTestId('field-dataset.root').fill(path.join(app.dataDir, 'no-cifar'));
    await page.getByTestId('dataset-open').click();
    await expect.poll(() => page.getByTestId('dataset-error').textContent()).toContain('no-cifar');

    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
