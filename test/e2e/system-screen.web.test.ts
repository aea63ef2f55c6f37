import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService } from '../../src/service/app-service';
import { requireBuilt } from '../helpers/build';
import { launchChromium, screenshotPath } from '../helpers/browser';
import { useSwiftShader } from '../engine/webgpu/swiftshader';

let server: WebServer;
let browser: Browser;

beforeAll(async () => {
  // The engine process inherits it: Dawn then offers SwiftShader, which the Compute panel shows as passed over.
  useSwiftShader();
  // The real app API: the same service Electron's main process serves, backed by a forked engine process.
  const service = createAppService({
    launch: forkLauncher,
    forced: null,
    dataDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-data-')),
  });
  server = await startWebServer({ service, rendererDir: requireBuilt('renderer'), port: 0 });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the system screen in Chromium (web mode)', () => {
  it('shows the backend the engine process chose and why the others were passed over', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(server.url);
    // The token became a cookie and left the address bar (and the history); the router writes its home, #/.
    expect(page.url()).toBe(`http://127.0.0.1:${server.port}/#/`);
    // The backend badge is always in the header; it opens the Compute page.
    await page.getByTestId('backend-badge-link').click();
    const chosen = page.getByTestId('chosen-backend');
    await chosen.waitFor({ timeout: 60_000 });
    const report = await (
      await fetch(`http://127.0.0.1:${server.port}/api/call`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${server.token}` },
        body: JSON.stringify({ method: 'system.report', input: {} }),
      })
    ).json();
    const expected = (report as { value: { chosen: string } }).value.chosen;

    expect(await chosen.textContent()).toBe(expected);
    expect(await page.getByTestId('backend-name').textContent()).toContain(expected);
    expect(await page.getByTestId('transport').textContent()).toContain('web mode');
    const rows = page.getByTestId('candidates').locator('tbody tr');
    expect(await rows.count()).toBe(5);
    const gpuRow = rows.filter({ hasText: '@tensorflow/tfjs-node-gpu' });
    expect(await gpuRow.locator('td').nth(2).textContent()).toMatch(/yes|no/);
    expect((await gpuRow.locator('td').nth(3).textContent())?.trim().length).toBeGreaterThan(5);
    expect(await page.getByTestId('gpu-summary').textContent()).not.toBe('');
    const webgpu = page.getByTestId('webgpu-adapter');
    expect(await webgpu.getAttribute('data-status')).toBe('cpu-adapter');
    expect(await webgpu.textContent()).toMatch(/CPU adapter google swiftshader .*used only when forced/);
    expect(await webgpu.textContent()).toMatch(/limits: workgroup storage \d+ B/);
    const webgpuRow = rows.filter({ hasText: '@tensorflow/tfjs-backend-webgpu' });
    expect(await webgpuRow.locator('td').nth(3).textContent()).toMatch(/^\s*passed over: CPU adapter/);

    await page.screenshot({ path: screenshotPath('system-web'), fullPage: true });
    expect(problems, problems.join('\n')).toEqual([]);
    await page.close();
  });
});
