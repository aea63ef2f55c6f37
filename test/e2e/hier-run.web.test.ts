import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';
import { requireBuilt } from '../helpers/build';
import { launchChromium, screenshotPath } from '../helpers/browser';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * Issue 18 in the app (Chromium, web mode, the real service): a micro ConvNeXt chosen in the new-run
 * form is refused on the tfjs engine with the reason, then runs MIMIR pre-training on the PyTorch
 * engine to done; its checkpoint fine-tunes with PGD-AT on the PyTorch engine through the same API; the
 * evaluation form says the PyTorch engine evaluates that checkpoint, and the job runner evaluates it there.
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-hier-e2e-'));
let service: AppService;
let server: WebServer;
let browser: Browser;

async function callApi<T>(method: string, input: unknown): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${server.port}/api/call`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.token}` },
    body: JSON.stringify({ method, input }),
  });
  const body = (await response.json()) as { ok: boolean; value: T; error?: { message: string } };
  if (!body.ok) throw new Error(body.error?.message);
  return body.value;
}

async function finished(id: string): Promise<Run> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const run = await callApi<Run>('runs.get', { id });
    if (run.status === 'done' || run.status === 'failed') return run;
    if (Date.now() > deadline) throw new Error(`run ${id} is still ${run.status}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const found = findPythonWithTorch();

describe('a ConvNeXt run from the form (Chromium, web mode)', () => {
  beforeAll(async () => {
    service = createAppService({ launch: forkLauncher, forced: null, dataDir });
    server = await startWebServer({ service, rendererDir: requireBuilt('renderer'), port: 0 });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    service?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is refused on tfjs naming the PyTorch engine, pre-trains with MIMIR on torch, fine-tunes with PGD-AT, evaluates on torch', async () => {
    if (!found.python) throw new Error(found.reason);
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}#/new`);
    await page.getByTestId('preset-quick-demo-mimir').click();
    await page.getByTestId('field-model').selectOption('convnext-micro');
    await page.getByTestId('field-dataset.size').fill('16');
    await page.getByTestId('field-dataset.imageSize').fill('32');
    await page.getByTestId('field-epochs').fill('1');
    await page.getByTestId('field-batchSize').fill('8');
    await page.getByTestId('run-name-input').fill('e2e convnext MIMIR');
    await page.getByTestId('form-problems').waitFor();
    await page.getByText('The convnext encoder runs on the PyTorch engine only').first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: screenshotPath('hier-form-tfjs-refused'), fullPage: true });

    await page.getByTestId('field-engine.name').selectOption('torch');
    await page.getByTestId('field-engine.device').selectOption('cpu');
    await page.getByTestId('form-valid').waitFor();
    // The model's help shows the ConvNeXt's size (model-summary.ts).
    await page
      .getByText(/ConvNeXt for tests and demos.*parameters/)
      .first()
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: screenshotPath('hier-form-torch'), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    await page
      .getByTestId('run-view')
      .getByTestId('run-status')
      .and(page.locator('[data-status="done"]'))
      .waitFor({ timeout: 300_000 });
    const points = async (key: string) => Number(await page.getByTestId(`chart-${key}`).getAttribute('data-points'));
    await expect.poll(() => points('mi'), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.screenshot({ path: screenshotPath('hier-run-done'), fullPage: true });
    const run = await callApi<Run>('runs.get', { id });
    expect(run.backend).toBe('torch');

    const tuned = await callApi<Run>('runs.create', {
      kind: 'finetune',
      name: 'PGD-AT of the ConvNeXt',
      config: {
        method: 'pgd-at',
        source: { kind: 'pretrained', checkpoint: run.lastCheckpoint ?? '' },
        dataset: { kind: 'builtin', size: 16, imageSize: 32 },
        batchSize: 8,
        epochs: 1,
        attack: { steps: 1 },
        heldOut: { size: 8, pgdSteps: 2 },
        engine: { name: 'torch', device: 'cpu' },
      },
    });
    const finetuned = await finished(tuned.id);
    expect(finetuned.status, finetuned.error ?? '').toBe('done');

    // The evaluation form says which engine evaluates the fine-tuned ConvNeXt, under its checkpoint field.
    await page.goto(`${server.url}#/runs/${encodeURIComponent(tuned.id)}`);
    await page.getByTestId('action-evaluate').click();
    await page.getByTestId('field-checkpoint').waitFor();
    const line = page.getByTestId('field-checkpoint-engine');
    await expect
      .poll(() => line.textContent(), { timeout: 30_000 })
      .toMatch(/^Evaluated on the PyTorch engine: the convnext encoder runs there only/);
    await page.getByTestId('field-checkpoint-engine').scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('hier-evaluate-form-engine'), fullPage: true });

    // The app's job runner evaluates it on the PyTorch engine: natural accuracy equals the held-out one.
    const evaluation = await callApi<Run>('runs.create', {
      kind: 'evaluate',
      name: 'Evaluation of the ConvNeXt',
      config: {
        checkpoint: finetuned.lastCheckpoint ?? '',
        dataset: { kind: 'builtin', size: 16, imageSize: 32, split: 'test' },
        examples: { count: 8 },
        attacks: [{ attack: 'natural' }, { attack: 'pgd', steps: 2 }],
      },
    });
    const evaluated = await finished(evaluation.id);
    expect(evaluated.status, evaluated.error ?? '').toBe('done');
    expect(evaluated.backend).toBe('torch');
    expect(evaluated.summary?.natural_accuracy).toBe(finetuned.summary?.heldout_natural_acc);
    expect(evaluated.summary?.['robust_accuracy/pgd2']).toBeLessThanOrEqual(evaluated.summary?.natural_accuracy ?? -1);
    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  }, 600_000);
});
