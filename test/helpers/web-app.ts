import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';
import { requireBuilt } from './build';
import { launchChromium } from './browser';

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

  async openPage(hash: string, viewport = { width: 1440, height: 900 }): Promise<Page> {
    if (!this.browser || !this.server) throw new Error('start() the app first');
    const page = await this.browser.newPage({ viewport, acceptDownloads: true });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') this.problems.push(message.text());
    });
    page.on('pageerror', (error) => this.problems.push(error.message));
    await page.goto(`${this.server.url}${hash}`);
    return page;
  }
}

/** A micro pre-training config: 16 px built-in images, the micro ViT, batch 32 (seconds per run). */
export function microPretrain(mode: 'mae' | 'adv-mae' | 'mimir', size = 128, epochs = 2): Record<string, unknown> {
  return { mode, model: 'micro', dataset: { kind: 'builtin', size, imageSize: 16 }, epochs, batchSize: 32 };
}
