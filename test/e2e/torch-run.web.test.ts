import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';
import { requireBuilt } from '../helpers/build';
import { launchChromium, screenshotPath } from '../helpers/browser';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * A MIMIR run started from the new-run form on the PyTorch engine (Compute engine: torch) in Chromium
 * against the real web server: live charts, previews, done; then its checkpoint fine-tunes with PGD-AT
 * on the tfjs engine and is evaluated there, through the same API the app uses.
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-torch-e2e-'));
let service: AppService;
let server: WebServer;
let browser: Browser;
let page: Page;
const problems: string[] = [];
/** 64 images / batch 16 = 4 steps per epoch, 2 epochs. */
const STEPS = 8;

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

describe.skipIf(!found.python)('a PyTorch-engine run from the form (Chromium, web mode)', () => {
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

  it('charts it live, shows its previews, ends done; tfjs fine-tunes its checkpoint with PGD-AT and evaluates it', async () => {
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}#/new`);
    await page.getByTestId('preset-quick-demo-mimir').click();
    await page.getByTestId('field-model').selectOption('micro');
    await page.getByTestId('field-dataset.size').fill('64');
    await page.getByTestId('field-dataset.imageSize').fill('16');
    await page.getByTestId('field-epochs').fill('2');
    await page.getByTestId('field-batchSize').fill('16');
    await page.getByTestId('field-engine.name').selectOption('torch');
    await page.getByTestId('field-engine.device').selectOption('cpu');
    await page.getByTestId('run-name-input').fill('e2e torch MIMIR');
    await page.getByTestId('form-valid').waitFor();
    await page.screenshot({ path: screenshotPath('torch-new-form'), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));

    const points = async (key: string) => Number(await page.getByTestId(`chart-${key}`).getAttribute('data-points'));
    await expect.poll(() => points('loss'), { timeout: 120_000, interval: 200 }).toBeGreaterThan(0);
    await page
      .getByTestId('run-view')
      .getByTestId('run-status')
      .and(page.locator('[data-status="done"]'))
      .waitFor({ timeout: 240_000 });
    for (const key of ['loss', 'recon_loss', 'mi', 'lr']) {
      await expect.poll(() => points(key), { timeout: 10_000 }).toBe(STEPS);
    }
    for (const kind of ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']) {
      await page.getByTestId(`preview-${kind}`).locator('img').waitFor();
    }
    await page.screenshot({ path: screenshotPath('torch-run-done'), fullPage: true });
    const run = await callApi<Run>('runs.get', { id });
    expect(run.backend).toBe('torch');

    const tuned = await callApi<Run>('runs.create', {
      kind: 'finetune',
      name: 'tfjs PGD-AT of the torch run',
      config: {
        method: 'pgd-at',
        source: { kind: 'pretrained', checkpoint: run.lastCheckpoint ?? '' },
        dataset: { kind: 'builtin', size: 64, imageSize: 16 },
        batchSize: 16,
        epochs: 1,
        attack: { steps: 2 },
        heldOut: { size: 0 },
      },
    });
    const finetuned = await finished(tuned.id);
    expect(finetuned.status, finetuned.error ?? '').toBe('done');
    const evaluation = await callApi<Run>('runs.create', {
      kind: 'evaluate',
      name: 'natural and PGD of it',
      config: {
        checkpoint: finetuned.lastCheckpoint ?? '',
        dataset: { kind: 'builtin', split: 'test', size: 16, imageSize: 16 },
        examples: { count: 8 },
        attacks: [{ attack: 'natural' }, { attack: 'pgd', steps: 2 }],
      },
    });
    const evaluated = await finished(evaluation.id);
    expect(evaluated.status, evaluated.error ?? '').toBe('done');
    expect(problems).toEqual([]);
  }, 600_000);

  it('fine-tunes with DBAT on torch from the form (the Compute engine help lists every method) to done', async () => {
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}#/new?kind=finetune`);
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="finetune"]')).waitFor();
    await page.getByTestId('field-source.kind').selectOption('scratch');
    await page.getByTestId('field-source.model').selectOption('micro');
    await page.getByTestId('field-method').selectOption('dbat');
    await page.getByTestId('field-dataset.size').fill('64');
    await page.getByTestId('field-dataset.imageSize').fill('16');
    await page.getByTestId('field-epochs').fill('1');
    await page.getByTestId('field-batchSize').fill('16');
    await page.getByTestId('field-attack.steps').fill('2');
    await page.getByTestId('field-heldOut.size').fill('0');
    await page.getByTestId('field-engine.name').selectOption('torch');
    await page.getByTestId('field-engine.device').selectOption('cpu');
    await page.getByTestId('run-name-input').fill('e2e torch DBAT');
    await page.getByTestId('form-valid').waitFor();
    await page.screenshot({ path: screenshotPath('torch-finetune-form'), fullPage: true });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    await page
      .getByTestId('run-view')
      .getByTestId('run-status')
      .and(page.locator('[data-status="done"]'))
      .waitFor({ timeout: 240_000 });
    const points = Number(await page.getByTestId('chart-loss').getAttribute('data-points'));
    expect(points).toBe(4);
    await page.screenshot({ path: screenshotPath('torch-finetune-done'), fullPage: true });
    const run = await callApi<Run>('runs.get', { id });
    expect(run.backend).toBe('torch');
    expect(run.status, run.error ?? '').toBe('done');
    expect(problems).toEqual([]);
  }, 600_000);
});
