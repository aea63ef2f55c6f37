import path from 'node:path';
import { _electron as electron, type ElectronApplication } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { requireBuilt } from '../helpers/build';
import { screenshotPath } from '../helpers/browser';
import { electronBinary, ensureDisplay } from '../helpers/electron';

// Runs where an Electron binary exists (any `npm install` without ELECTRON_SKIP_BINARY_DOWNLOAD) and
// a display or Xvfb is available; CI here has neither, and the same screen is covered in Chromium.
const binary = electronBinary();
const display = binary ? await ensureDisplay() : null;

let app: ElectronApplication | undefined;
afterAll(async () => {
  await app?.close();
  display?.stop();
});

describe.runIf(binary !== null && display !== null)('the system screen in Electron', () => {
  it('starts the engine in a utility process, shows its backend, and keeps the renderer sandboxed', async () => {
    app = await electron.launch({
      executablePath: binary ?? undefined,
      args: [requireBuilt('main/index.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
      env: { ...process.env, DISPLAY: display?.display ?? '', MIMIR_BACKEND: '' },
      cwd: path.resolve(requireBuilt('main'), '../..'),
    });
    const window = await app.firstWindow();
    await window.getByTestId('backend-badge-link').click();
    const chosen = window.getByTestId('chosen-backend');
    await chosen.waitFor({ timeout: 60_000 });
    expect(['tensorflow', 'webgpu', 'wasm', 'cpu']).toContain(await chosen.textContent());
    expect(await window.getByTestId('transport').textContent()).toContain('Electron IPC');

    const isolation = await window.evaluate(() => ({
      process: typeof (globalThis as { process?: unknown }).process,
      require: typeof (globalThis as { require?: unknown }).require,
      bridge: Object.keys((globalThis as { mimir?: object }).mimir ?? {}),
    }));
    expect(isolation).toEqual({ process: 'undefined', require: 'undefined', bridge: ['call'] });

    await window.screenshot({ path: screenshotPath('system-electron') });
  });
});
