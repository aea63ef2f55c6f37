import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';
import type { TorchEngineReport } from '../../src/shared/system';
import { requireBuilt } from '../helpers/build';
import { launchChromium, screenshotPath } from '../helpers/browser';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * The PyTorch engine in the app (Chromium, web mode, the real service): the Compute page's PyTorch
 * entry (python, torch, devices, collectives, who starts the ranks) from the same discovery as
 * `mimir doctor`, and the run header's compute line for a torch run on 2 processes and a tfjs run (the top
 * bar's badge: the run's engine on a torch run's page, the engine process's backend elsewhere).
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-compute-torch-'));
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

const MICRO = {
  mode: 'mae',
  model: 'micro',
  dataset: { kind: 'builtin', size: 16, imageSize: 16 },
  batchSize: 8,
  epochs: 1,
  previewCount: 2,
};

const found = findPythonWithTorch();

describe.skipIf(!found.python)('the PyTorch engine on the Compute page and in the run header (Chromium)', () => {
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

  it('the Compute page shows python, torch, devices, collectives and the launcher with its reason', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(server.url);
    await page.getByTestId('backend-badge-link').click();
    const panel = page.getByTestId('torch-engine');
    await panel.waitFor({ timeout: 120_000 });
    const report = (await callApi<{ torchEngine?: TorchEngineReport }>('system.report', {})).torchEngine;
    expect(report?.available).toBe(true);
    expect(await page.getByTestId('torch-available').textContent()).toBe('available');
    expect(await page.getByTestId('torch-version').textContent()).toBe(found.python?.torch);
    expect(await page.getByTestId('torch-collectives').textContent()).toContain('gloo');
    expect(await page.getByTestId('torch-devices').textContent()).toContain(
      report?.cuda ? `${report.devices.length} device` : 'no CUDA device: CPU processes',
    );
    const launcher = (await page.getByTestId('torch-launcher').textContent()) ?? '';
    expect(launcher).toContain(report?.launcher === 'torchrun' ? 'torchrun' : 'the launcher (own rank environment)');
    expect(launcher).toContain(report?.launcherReason ?? '?');
    await page.screenshot({ path: screenshotPath('compute-torch'), fullPage: true });
    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  }, 180_000);

  it('the run header says the engine, processes, device and precision of a torch run, and the backend of a tfjs run', async () => {
    const torch = await callApi<Run>('runs.create', {
      kind: 'pretrain',
      name: 'torch on 2 processes',
      config: { ...MICRO, engine: { name: 'torch', nproc: 2, device: 'cpu' } },
    });
    const tfjs = await callApi<Run>('runs.create', { kind: 'pretrain', name: 'tfjs', config: MICRO });
    const [doneTorch, doneTfjs] = [await finished(torch.id), await finished(tfjs.id)];
    expect(doneTorch.status, doneTorch.error ?? '').toBe('done');
    expect(doneTfjs.status, doneTfjs.error ?? '').toBe('done');

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}#/runs/${tfjs.id}`);
    const compute = page.getByTestId('run-backend');
    await compute.waitFor({ timeout: 60_000 });
    expect((await compute.textContent())?.trim()).toBe(`TensorFlow.js · ${doneTfjs.backend ?? '?'}`);
    // The top bar's badge: the engine process's backend on a tfjs run's page ...
    const chosen = (await callApi<{ chosen: string }>('system.report', {})).chosen;
    await expect.poll(async () => (await page.getByTestId('backend-name').textContent())?.trim()).toBe(chosen);

    await page.goto(`${server.url}#/runs/${torch.id}`);
    await page.getByText('torch on 2 processes').first().waitFor({ timeout: 60_000 });
    await expect
      .poll(async () => (await page.getByTestId('run-backend').textContent())?.trim(), { timeout: 60_000 })
      .toBe('PyTorch · 2 processes · cpu · fp32');
    // ... and the run's own engine on a torch run's page, which that backend did not run.
    await expect
      .poll(async () => (await page.getByTestId('backend-name').textContent())?.trim())
      .toBe('PyTorch · 2 processes · cpu · fp32');
    expect(await page.getByTestId('backend-badge').getAttribute('title')).toBe('Engine of this run');
    await page.screenshot({ path: screenshotPath('run-header-torch'), fullPage: false });
    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  }, 600_000);
});
