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

/**
 * The runs workflow in Chromium against the real web server and engine processes: start a micro
 * MIMIR run from the new-run form, watch its charts fill and the run finish; start an MAE run and
 * cancel it from the runs table; restart the server on the same data directory and find both runs
 * with their metrics.
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-runs-e2e-'));
let service: AppService;
let server: WebServer;
let browser: Browser;
let page: Page;
const problems: string[] = [];
/** Steps of the MIMIR run: 256 images / batch 32 = 8 steps per epoch, 3 epochs. */
const MIMIR_STEPS = 24;
let mimirRunId = '';
let maeRunId = '';

async function start(): Promise<void> {
  service = createAppService({ launch: forkLauncher, forced: null, dataDir });
  server = await startWebServer({ service, rendererDir: requireBuilt('renderer'), port: 0 });
}

async function stop(): Promise<void> {
  await server?.close();
  service?.close();
}

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

async function openPage(hash: string): Promise<void> {
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  await page.goto(`${server.url}${hash}`);
}

async function fill(testId: string, value: string): Promise<void> {
  await page.getByTestId(testId).fill(value);
}

async function pointsOf(key: string): Promise<number> {
  return Number(await page.getByTestId(`chart-${key}`).getAttribute('data-points'));
}

/** Shrink a quick-demo preset to a run of seconds: micro model, 256 images of 16 px, batch 32. */
async function shrinkQuickDemo(epochs: number): Promise<void> {
  await page.getByTestId('field-model').selectOption('micro');
  await fill('field-dataset.size', '256');
  await fill('field-dataset.imageSize', '16');
  await fill('field-epochs', String(epochs));
  await fill('field-batchSize', '32');
}

beforeAll(async () => {
  await start();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('runs in Chromium (web mode, real engine)', () => {
  it('starts a micro MIMIR run from the form, charts its metrics live and sees it finish', async () => {
    await openPage('#/new');
    await page.getByTestId('preset-quick-demo-mimir').click();
    expect(await page.getByTestId('field-mode').inputValue()).toBe('mimir');
    expect(await page.getByTestId('field-mi.lambda').inputValue()).toBe('0.001');

    // Inline validation speaks the schema's own words and blocks the start.
    await fill('field-epochs', '0');
    await expect.poll(() => page.getByText('epochs must be >= 1').count()).toBe(1);
    expect(await page.getByTestId('start-run').isDisabled()).toBe(true);
    await fill('field-batchSize', '1');
    await expect.poll(() => page.getByText('batchSize must be >= 2 (MI needs pairs of samples)').count()).toBe(1);
    expect(await page.getByTestId('form-problems').textContent()).toContain('2 problems');
    await page.getByTestId('section-training').screenshot({ path: screenshotPath('runs-new-form-invalid') });

    // Unions: a custom model starts from what its preset means; a dataset kind brings its own fields.
    await page.getByTestId('field-model-option-custom').click();
    expect(await page.getByTestId('field-model.width').inputValue()).toBe('64');
    expect(await page.getByTestId('field-model.patchSize').inputValue()).toBe('4');
    await fill('field-model.width', '66');
    await expect.poll(() => page.getByText('width 66 is not divisible by heads 4').count()).toBe(1);
    await page.getByTestId('field-dataset.kind').selectOption('cifar10');
    await expect.poll(() => page.getByText('root must be a path').count()).toBe(1);
    await page.screenshot({ path: screenshotPath('runs-new-form-unions'), fullPage: true });
    await page.getByTestId('field-dataset.kind').selectOption('builtin');
    expect(await page.getByTestId('field-dataset.size').inputValue()).toBe('2000');
    await page.getByTestId('field-model-option-preset').click();
    expect(await page.getByTestId('field-model').inputValue()).toBe('small-cpu');

    await shrinkQuickDemo(3);
    await fill('run-name-input', 'e2e micro MIMIR');
    await page.getByTestId('form-valid').waitFor();
    expect(await page.getByTestId('summary-steps').textContent()).toContain(`${MIMIR_STEPS} (8 per epoch)`);
    await page.screenshot({ path: screenshotPath('runs-new-form'), fullPage: true });

    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    mimirRunId = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    expect(await page.getByTestId('run-name').textContent()).toBe('e2e micro MIMIR');

    // Points arrive while it runs (pushed metrics), then the run ends done.
    await expect.poll(() => pointsOf('loss'), { timeout: 45_000, interval: 200 }).toBeGreaterThan(0);
    await page.getByTestId('run-view').getByTestId('run-status').and(page.locator('[data-status="done"]')).waitFor({
      timeout: 45_000,
    });
    for (const key of ['loss', 'recon_loss', 'mi', 'lr', 'images_per_s']) {
      await expect.poll(() => pointsOf(key), { timeout: 10_000 }).toBe(MIMIR_STEPS);
    }
    const latestLoss = await page.getByTestId('chart-loss').getByTestId('chart-latest').textContent();
    expect(Number(latestLoss)).toBeGreaterThan(0);

    // The latest preview holds every strip of an adversarial run.
    for (const kind of ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']) {
      await page.getByTestId(`preview-${kind}`).locator('img').waitFor();
    }
    expect(await page.getByTestId('preview-step').textContent()).toContain(`step ${MIMIR_STEPS}`);
    await expect.poll(() => page.getByTestId('run-log').textContent()).toContain(`done at step ${MIMIR_STEPS}`);
    expect(await page.locator('[data-config-path="epochs"]').textContent()).toBe('3');
    expect(await page.getByTestId('progress-steps').first().textContent()).toBe(`${MIMIR_STEPS} / ${MIMIR_STEPS}`);

    // Rename inline, tag, note: each is stored.
    await page.getByTestId('rename').click();
    await page.getByTestId('rename-input').fill('e2e micro MIMIR (renamed)');
    await page.getByTestId('rename-input').press('Enter');
    await page.getByTestId('tag-input').fill('e2e');
    await page.getByTestId('tag-input').press('Enter');
    await page.getByTestId('note-input').fill('Loss fell; MI recorded every step.');
    await page.getByTestId('note-save').click();
    await page.getByTestId('note-saved').waitFor();
    await expect
      .poll(async () => {
        const run = await callApi<Run>('runs.get', { id: mimirRunId });
        return [run.name, run.tags.join(), run.note];
      })
      .toEqual(['e2e micro MIMIR (renamed)', 'e2e', 'Loss fell; MI recorded every step.']);
    const summary = (await callApi<Run>('runs.get', { id: mimirRunId })).summary;
    expect(summary?.loss).toBeGreaterThan(0);
    await page.screenshot({ path: screenshotPath('runs-run-done'), fullPage: true });

    // Smoothing and log scale re-render without losing points.
    await page.getByTestId('log-scale').check();
    expect(await pointsOf('loss')).toBe(MIMIR_STEPS);
    await page.getByTestId('log-scale').uncheck();

    // Duplicate opens the form filled with this run's config.
    await page.getByTestId('run-view').getByTestId('action-duplicate').click();
    await page.getByTestId('new-run-view').waitFor();
    await expect.poll(() => page.getByTestId('run-name-input').inputValue()).toBe('e2e micro MIMIR (renamed) (copy)');
    expect(await page.getByTestId('field-epochs').inputValue()).toBe('3');
    expect(await page.getByTestId('field-model').inputValue()).toBe('micro');
    await page.close();
  });

  it('starts an MAE run and cancels it from the runs table; a failing run shows why', async () => {
    await openPage('#/new?preset=quick-demo-mae');
    await expect.poll(() => page.getByTestId('field-mode').inputValue()).toBe('mae');
    await shrinkQuickDemo(200);
    await fill('run-name-input', 'e2e MAE to cancel');
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    maeRunId = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    await expect.poll(() => pointsOf('loss'), { timeout: 45_000, interval: 200 }).toBeGreaterThan(2);
    await page.getByTestId('preview-reconstruction').locator('img').waitFor();
    // MAE has no attack: its preview has no adversarial or perturbation strip.
    expect(await page.getByTestId('preview-adversarial').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('runs-run-live') });

    await page.getByTestId('nav-runs').click();
    const row = page.locator(`[data-run-id="${maeRunId}"]`);
    await row.getByTestId('run-status').and(page.locator('[data-status="running"]')).waitFor();
    await expect.poll(() => row.getByTestId('progress-eta').textContent()).toMatch(/^ETA /);
    await page.screenshot({ path: screenshotPath('runs-list-running'), fullPage: true });
    await row.getByTestId('action-cancel').click();
    await row.getByTestId('run-status').and(page.locator('[data-status="cancelled"]')).waitFor({ timeout: 30_000 });
    expect(await row.getByTestId('action-resume').count()).toBe(1);

    // Filters: by status and by text (server-side).
    // The rows are polled as a list of ids (not a count, then a read): a row count of 1 can be seen
    // while the list is still changing.
    const listedIds = () =>
      page.getByTestId('run-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
    await page.getByTestId('status-filter-done').click();
    expect(await page.getByTestId('status-filter-done').getAttribute('aria-pressed')).toBe('true');
    await expect.poll(listedIds).toEqual([mimirRunId]);
    await page.getByTestId('status-filter-done').click();
    await page.getByTestId('runs-search').fill('cancel');
    await expect.poll(listedIds).toEqual([maeRunId]);
    await page.getByTestId('runs-search').fill('');
    await expect.poll(() => page.getByTestId('run-row').count()).toBe(2);
    await page.screenshot({ path: screenshotPath('runs-list-cancelled'), fullPage: true });

    // A dataset that is not there is refused when the run is created, saying where it looked.
    await expect(
      callApi<Run>('runs.create', {
        kind: 'pretrain',
        name: 'e2e missing CIFAR-10',
        config: { mode: 'mae', model: 'micro', dataset: { kind: 'cifar10', root: path.join(dataDir, 'no-cifar') } },
      }),
    ).rejects.toThrow(/no-cifar/);
    // A run whose config cannot work (a batch larger than the dataset) fails, live, with its reason;
    // it offers Duplicate and edit, not Resume (resuming would fail the same way).
    const failing = await callApi<Run>('runs.create', {
      kind: 'pretrain',
      name: 'e2e batch larger than the dataset',
      config: { mode: 'mae', model: 'micro', dataset: { kind: 'builtin', size: 16, imageSize: 16 }, batchSize: 32 },
    });
    const failedRow = page.locator(`[data-run-id="${failing.id}"]`);
    await failedRow.getByTestId('run-status').and(page.locator('[data-status="failed"]')).waitFor({ timeout: 60_000 });
    expect(await failedRow.getByTestId('action-resume').count()).toBe(0);
    await failedRow.getByTestId('run-link').click();
    const banner = page.getByTestId('run-error');
    await banner.waitFor();
    expect(await banner.textContent()).toContain('The train set has 16 images, fewer than one batch of 32.');
    expect(await page.getByTestId('error-resume').count()).toBe(0);
    await page.getByTestId('error-duplicate').click();
    await expect.poll(() => page.getByTestId('new-run-view').getAttribute('data-kind')).toBe('pretrain');
    expect(await page.getByTestId('field-batchSize').inputValue()).toBe('32');
    await page.goBack();
    await banner.waitFor();
    await page.getByTestId('no-metrics').waitFor();
    await page.screenshot({ path: screenshotPath('runs-run-failed') });
    await page.close();
  });

  it('finds both runs and their metrics after the server restarts on the same data directory', async () => {
    await stop();
    await start();
    await openPage('#/runs');
    await expect.poll(() => page.getByTestId('run-row').count()).toBe(3);
    const mimirRow = page.locator(`[data-run-id="${mimirRunId}"]`);
    const maeRow = page.locator(`[data-run-id="${maeRunId}"]`);
    expect(await mimirRow.getByTestId('run-status').getAttribute('data-status')).toBe('done');
    expect(await maeRow.getByTestId('run-status').getAttribute('data-status')).toBe('cancelled');
    expect(Number(await mimirRow.getByTestId('summary-loss').textContent())).toBeGreaterThan(0);
    expect(await mimirRow.getByTestId('tags').textContent()).toContain('e2e');

    await mimirRow.getByTestId('run-link').click();
    await page.getByTestId('run-view').waitFor();
    await expect.poll(() => pointsOf('loss'), { timeout: 60_000 }).toBe(MIMIR_STEPS);
    await expect.poll(() => pointsOf('mi'), { timeout: 60_000 }).toBe(MIMIR_STEPS);
    await page.getByTestId('preview-clean').locator('img').waitFor();
    await page.screenshot({ path: screenshotPath('runs-run-after-restart'), fullPage: true });

    // The cancelled run keeps its points too; then delete it with its files.
    // A full page load (the URL's token is answered with a redirect): wait as long as the app's start takes.
    await page.goto(`${server.url}#/runs/${maeRunId}`);
    await expect.poll(() => pointsOf('loss'), { timeout: 60_000 }).toBeGreaterThan(0);
    await page.getByTestId('run-view').getByTestId('action-delete').click();
    await page.getByTestId('delete-files').check();
    await page.screenshot({ path: screenshotPath('runs-delete-dialog') });
    await page.getByTestId('confirm-delete').click();
    await page.getByTestId('runs-view').waitFor();
    await expect.poll(() => page.getByTestId('run-row').count()).toBe(2);
    await expect(callApi('runs.get', { id: maeRunId })).rejects.toThrow(/No run/);

    // The backend badge opens the Compute page.
    await page.getByTestId('backend-badge-link').click();
    await page.getByTestId('chosen-backend').waitFor({ timeout: 30_000 });
    await page.screenshot({ path: screenshotPath('runs-compute') });

    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  });
});
