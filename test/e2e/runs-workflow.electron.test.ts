import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { _electron as electron, type ElectronApplication, type Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, requireBuilt } from '../helpers/build';
import { screenshotPath } from '../helpers/browser';
import { electronBinary, ensureDisplay } from '../helpers/electron';

/**
 * The runs workflow of runs-workflow.web.test.ts in the Electron app itself (IPC, preload, utility
 * processes): a micro MIMIR run from the form to done, an MAE run cancelled, and both still there
 * after the app is closed and opened again on the same data. Runs where an Electron binary and a
 * display (or Xvfb) exist; CI here has neither, and the web test covers the same screens.
 */
const binary = electronBinary();
const display = binary ? await ensureDisplay() : null;
const home = mkdtempSync(path.join(os.tmpdir(), 'mimir-electron-e2e-'));
let app: ElectronApplication | undefined;

async function launch(): Promise<Page> {
  app = await electron.launch({
    executablePath: binary ?? undefined,
    args: [requireBuilt('main/index.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
    env: { ...process.env, DISPLAY: display?.display ?? '', MIMIR_HOME: home, MIMIR_BACKEND: '' },
    cwd: ROOT,
  });
  const window = await app.firstWindow();
  await window.getByTestId('backend-badge').waitFor();
  return window;
}

async function go(window: Page, hash: string): Promise<void> {
  await window.evaluate((target) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = target;
  }, hash);
}

async function shrink(window: Page, epochs: number): Promise<void> {
  await window.getByTestId('field-model').selectOption('micro');
  await window.getByTestId('field-dataset.size').fill('256');
  await window.getByTestId('field-dataset.imageSize').fill('16');
  await window.getByTestId('field-epochs').fill(String(epochs));
  await window.getByTestId('field-batchSize').fill('32');
}

afterAll(async () => {
  await app?.close();
  display?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe.runIf(binary !== null && display !== null)('runs in the Electron app', () => {
  it('runs MIMIR to done, cancels MAE, and keeps both across a restart', async () => {
    let window = await launch();

    await go(window, '#/new?preset=quick-demo-mimir');
    await expect.poll(() => window.getByTestId('field-mode').inputValue()).toBe('mimir');
    await shrink(window, 3);
    await window.getByTestId('run-name-input').fill('electron MIMIR');
    await window.getByTestId('form-valid').waitFor();
    await window.getByTestId('start-run').click();
    await window.getByTestId('run-view').waitFor();
    const mimirId = decodeURIComponent(new URL(window.url()).hash.replace('#/runs/', ''));
    await window.getByTestId('run-view').getByTestId('run-status').and(window.locator('[data-status="done"]')).waitFor({
      timeout: 90_000,
    });
    await expect.poll(() => window.getByTestId('chart-loss').getAttribute('data-points')).toBe('24');
    await window.screenshot({ path: screenshotPath('electron-run-done') });

    await go(window, '#/new?preset=quick-demo-mae');
    await expect.poll(() => window.getByTestId('field-mode').inputValue()).toBe('mae');
    await shrink(window, 200);
    await window.getByTestId('run-name-input').fill('electron MAE to cancel');
    await window.getByTestId('start-run').click();
    await window.getByTestId('run-view').waitFor();
    const maeId = decodeURIComponent(new URL(window.url()).hash.replace('#/runs/', ''));
    await go(window, '#/runs');
    const row = window.locator(`[data-run-id="${maeId}"]`);
    await row.getByTestId('run-status').and(window.locator('[data-status="running"]')).waitFor({ timeout: 60_000 });
    await row.getByTestId('action-cancel').click();
    await row.getByTestId('run-status').and(window.locator('[data-status="cancelled"]')).waitFor({ timeout: 30_000 });

    await app?.close();
    window = await launch();
    await go(window, '#/runs');
    await window
      .locator(`[data-run-id="${mimirId}"]`)
      .getByTestId('run-status')
      .and(window.locator('[data-status="done"]'))
      .waitFor();
    await window
      .locator(`[data-run-id="${maeId}"]`)
      .getByTestId('run-status')
      .and(window.locator('[data-status="cancelled"]'))
      .waitFor();
    await go(window, `#/runs/${mimirId}`);
    await expect.poll(() => window.getByTestId('chart-loss').getAttribute('data-points')).toBe('24');
    await window.screenshot({ path: screenshotPath('electron-runs-after-restart') });
  });
});
