import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { _electron as electron, type ElectronApplication, type Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, requireBuilt } from '../helpers/build';
import { screenshotPath } from '../helpers/browser';
import { electronBinary, ensureDisplay } from '../helpers/electron';

/**
 * export-import.web.test.ts in the Electron app itself: the new API methods over IPC, and the import's
 * TensorFlow.js cpu backend inside Electron's main process. A micro classifier fine-tuned from the
 * form, exported from its run page, imported back from the Checkpoints page and evaluated; then the
 * dataset browser. Runs where an Electron binary and a display (or Xvfb) exist; CI here has neither.
 */
const binary = electronBinary();
const display = binary ? await ensureDisplay() : null;
const home = mkdtempSync(path.join(os.tmpdir(), 'mimir-electron-export-'));
let app: ElectronApplication | undefined;

async function go(window: Page, hash: string): Promise<void> {
  await window.evaluate((target) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = target;
  }, hash);
}

async function waitDone(window: Page): Promise<void> {
  await window.getByTestId('run-view').getByTestId('run-status').and(window.locator('[data-status="done"]')).waitFor({
    timeout: 90_000,
  });
}

afterAll(async () => {
  await app?.close();
  display?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe.runIf(binary !== null && display !== null)('export, import and datasets in the Electron app', () => {
  it('fine-tunes, exports, imports back and evaluates the import; browses the built-in dataset', async () => {
    app = await electron.launch({
      executablePath: binary ?? undefined,
      args: [requireBuilt('main/index.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
      env: { ...process.env, DISPLAY: display?.display ?? '', MIMIR_HOME: home, MIMIR_BACKEND: '' },
      cwd: ROOT,
    });
    const window = await app.firstWindow();
    await window.getByTestId('backend-badge').waitFor();

    await go(window, '#/new?kind=finetune');
    await window.getByTestId('new-run-view').and(window.locator('[data-kind="finetune"]')).waitFor();
    await window.getByTestId('field-source.kind').selectOption('scratch');
    await window.getByTestId('field-source.model').selectOption('micro');
    await window.getByTestId('field-method').selectOption('natural');
    await window.getByTestId('field-dataset.size').fill('128');
    await window.getByTestId('field-dataset.imageSize').fill('16');
    await window.getByTestId('field-epochs').fill('1');
    await window.getByTestId('field-batchSize').fill('32');
    await window.getByTestId('field-heldOut.size').fill('0');
    await window.getByTestId('run-name-input').fill('electron classifier');
    await window.getByTestId('form-valid').waitFor();
    await window.getByTestId('start-run').click();
    await window.getByTestId('run-view').waitFor();
    await waitDone(window);

    const file = path.join(home, 'export', 'classifier.safetensors');
    await window.getByTestId('action-export').click();
    await window.getByTestId('export-dialog').waitFor();
    await window.getByTestId('export-file').fill(file);
    await window.getByTestId('export-write').click();
    await window.getByTestId('export-done').waitFor();
    expect(await window.getByTestId('export-pytorch').textContent()).toContain('load_state_dict');
    expect(existsSync(file)).toBe(true);
    await window.screenshot({ path: screenshotPath('electron-export-done') });
    await window.getByTestId('export-close').click();

    await go(window, '#/checkpoints');
    await window.getByTestId('import-file').fill(file);
    await window.getByTestId('import-run').click();
    await window.getByTestId('import-done').waitFor({ timeout: 30_000 });
    const imported = (await window.getByTestId('import-checkpoint').textContent()) ?? '';
    expect(existsSync(path.join(imported, 'checkpoint.json'))).toBe(true);

    await window.getByTestId('import-evaluate').click();
    await window.getByTestId('new-run-view').and(window.locator('[data-kind="evaluate"]')).waitFor();
    await window.getByTestId('field-dataset.size').fill('64');
    await window.getByTestId('field-dataset.imageSize').fill('16');
    await window.getByTestId('field-examples.count').fill('16');
    await window.getByTestId('form-valid').waitFor();
    await window.getByTestId('start-run').click();
    await window.getByTestId('run-view').waitFor();
    await waitDone(window);
    await window.getByTestId('attack-table').waitFor();
    await window.screenshot({ path: screenshotPath('electron-imported-evaluated') });

    await go(window, '#/datasets');
    await expect.poll(() => window.getByTestId('dataset-tile').count(), { timeout: 15_000 }).toBe(100);
    await window.getByTestId('class-filter').selectOption('5');
    await expect.poll(() => window.getByTestId('page-info').textContent()).toContain('500 images');
    await window.screenshot({ path: screenshotPath('electron-datasets') });
  });
});
