import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import { requireBuilt } from './build';
import { launchChromium } from './browser';
import { expectAttackTable, fillFields, openActionForm, startRun, waitRunStatus } from './run-page';

/**
 * The workbench in web mode for end-to-end tests: the real service, engine processes and web server on
 * a temporary data directory, Debian's Chromium, and a few helpers to call the API and wait for runs.
 */
export class WebApp {
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-e2e-'));
  /** Console errors and warnings and page errors of every page opened. */
  readonly problems: string[] = [];
  private service: AppService | null = null;
  private server: WebServer | null = null;
  private browser: Browser | null = null;

  async start(): Promise<void> {
    this.service = createAppService({ launch: forkLauncher, forced: null, dataDir: this.dataDir });
    this.server = await startWebServer({ service: this.service, rendererDir: requireBuilt('renderer'), port: 0 });
    this.browser = await launchChromium();
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    await this.server?.close();
    this.service?.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  get url(): string {
    if (!this.server) throw new Error('start() the app first');
    return this.server.url;
  }

  async call<T>(method: string, input: unknown): Promise<T> {
    if (!this.server) throw new Error('start() the app first');
    const response = await fetch(`http://127.0.0.1:${this.server.port}/api/call`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.server.token}` },
      body: JSON.stringify({ method, input }),
    });
    const body = (await response.json()) as { ok: boolean; value: T; error?: { message: string } };
    if (!body.ok) throw new Error(body.error?.message);
    return body.value;
  }

  /** Its parent run is derived by the store from the checkpoint the config names. */
  createRun(kind: string, name: string, config: unknown): Promise<Run> {
    return this.call<Run>('runs.create', { kind, name, config });
  }

  /** The folder a run writes into (a fine-tuning source or an evaluation's model can name it). */
  runDir(id: string): string {
    return path.join(this.dataDir, 'runs', id);
  }

  /** Wait until a run is done (throwing with its error if it fails). */
  async waitDone(id: string, timeoutMs = 60_000): Promise<Run> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.call<Run>('runs.get', { id });
      if (run.status === 'done') return run;
      if (['failed', 'cancelled', 'interrupted'].includes(run.status))
        throw new Error(`run ${run.name} ${run.status}: ${run.error ?? ''}`);
      if (Date.now() > until) throw new Error(`run ${run.name} still ${run.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** A new page whose console errors, warnings and page errors go to `problems`. */
  async newPage(viewport = { width: 1440, height: 900 }): Promise<Page> {
    if (!this.browser) throw new Error('start() the app first');
    const page = await this.browser.newPage({ viewport, acceptDownloads: true });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') this.problems.push(message.text());
    });
    page.on('pageerror', (error) => this.problems.push(error.message));
    return page;
  }

  async openPage(hash: string, viewport = { width: 1440, height: 900 }): Promise<Page> {
    const page = await this.newPage(viewport);
    await page.goto(`${this.url}${hash}`);
    return page;
  }
}

/** A WebApp started before the test file's tests and stopped after them. */
export function webAppForFile(): WebApp {
  const app = new WebApp();
  beforeAll(async () => {
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
  });
  return app;
}

/** A micro pre-training config: 16 px built-in images, the micro ViT, batch 32 (seconds per run). */
export function microPretrain(mode: 'mae' | 'adv-mae' | 'mimir', size = 128, epochs = 2): Record<string, unknown> {
  return { mode, model: 'micro', dataset: { kind: 'builtin', size, imageSize: 16 }, epochs, batchSize: 32 };
}

/** The New-run form's micro sizes: two epochs of batch 32 (on the 128 built-in images of microMimirForm). */
export const MICRO_FORM = { epochs: '2', batchSize: '32' };

/** The fine-tuning form's micro sizes: MICRO_FORM and a held-out set of 16. */
export const MICRO_FINETUNE_FORM = { ...MICRO_FORM, 'heldOut.size': '16' };

/** The New-run form of a micro MIMIR pre-training of `preset`: the quick-demo-mimir preset on 128 built-in images of 16 px. */
export async function microMimirForm(app: WebApp, preset: string): Promise<Page> {
  const page = await app.openPage('#/new?preset=quick-demo-mimir');
  await expect.poll(() => page.getByTestId('field-mode').inputValue()).toBe('mimir');
  await fillFields(page, { 'dataset.size': '128', 'dataset.imageSize': '16' });
  await page.getByTestId('field-model').selectOption(preset);
  return page;
}

/**
 * From a done pre-training's run page: PGD-AT fine-tuning from its Fine-tune action at
 * MICRO_FINETUNE_FORM sizes (pgd-at proposed, the pre-training its parent, two held-out points), then
 * an evaluation of 16 examples from the fine-tuned run's Evaluate action (its checkpoint proposed) whose
 * natural and pgd20 results the attack table shows. Each run must be done within `timeout` ms.
 */
export async function microFinetuneAndEvaluate(
  app: WebApp,
  page: Page,
  pretrainId: string | undefined,
  timeout: number,
): Promise<void> {
  await openActionForm(page, 'finetune');
  expect(await page.getByTestId('field-method').inputValue()).toBe('pgd-at');
  await fillFields(page, MICRO_FINETUNE_FORM);
  await page.getByTestId('form-valid').waitFor();
  const finetuneId = await startRun(page);
  await waitRunStatus(page, 'done', timeout);
  await expect.poll(() => page.getByTestId('chart-heldout_pgd_acc').getAttribute('data-points')).toBe('2');
  const finetune = await app.call<Run>('runs.get', { id: finetuneId });
  expect(finetune.parentRunId).toBe(pretrainId);

  await openActionForm(page, 'evaluate');
  await expect.poll(() => page.getByTestId('field-checkpoint').inputValue()).toBe(finetune.lastCheckpoint);
  await fillFields(page, { 'examples.count': '16' });
  await page.getByTestId('form-valid').waitFor();
  const evaluationId = await startRun(page);
  await waitRunStatus(page, 'done', timeout);
  const [stored] = await app.call<Evaluation[]>('evaluations.list', { runId: evaluationId });
  const report = stored?.results as EvaluationReport;
  expect(report.examples.count).toBe(16);
  expect(report.attacks.map((a) => a.key)).toEqual(['natural', 'pgd20']);
  await expectAttackTable(page, report);
}
