import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Dialog, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { cifarArchive } from '../engine/data/helpers/cifar';
import { screenshotPath } from '../helpers/browser';
import { WebApp } from '../helpers/web-app';

/**
 * The router (vue-router, hash history) and the new-run form's leave guard, in Chromium against the
 * real web server: every address the app has used opens its screen, links and navigation write the
 * same `#/…` addresses, and leaving a form the user changed asks first while keeping the draft.
 */

const app = new WebApp();

beforeAll(async () => {
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

function hashOf(page: Page): string {
  return new URL(page.url()).hash;
}

describe('routes (web mode)', () => {
  it('opens every existing address on its screen', async () => {
    const page = await app.openPage('#/new?kind=finetune');
    await page.getByTestId('new-run-view').waitFor();
    expect(await page.getByTestId('new-run-view').getAttribute('data-kind')).toBe('finetune');
    const screens: [string, string][] = [
      ['#/runs', 'runs-view'],
      ['#/compute', 'compute-view'],
      ['#/sweeps', 'sweeps-view'],
      ['#/datasets', 'datasets-view'],
      ['#/checkpoints', 'checkpoints-view'],
      ['#/compare?runs=a,b', 'compare-view'],
      ['#/new?kind=evaluate', 'new-run-view'],
      ['#/', 'runs-view'],
      ['#/no/such/page', 'runs-view'],
    ];
    for (const [hash, testId] of screens) {
      await page.goto(`${app.url}${hash}`);
      await page.getByTestId(testId).waitFor({ timeout: 30_000 });
    }
    expect(await page.getByTestId('new-run-view').count()).toBe(0);

    // The sidebar's links are the same `#/…` addresses, and the current one is marked.
    await page.getByTestId('nav-sweeps').click();
    await page.getByTestId('sweeps-view').waitFor();
    expect(hashOf(page)).toBe('#/sweeps');
    await page.getByTestId('nav-new').click();
    await page.getByTestId('new-run-view').waitFor();
    expect(hashOf(page)).toBe('#/new');
    // Choosing a kind writes it into the address.
    await page.getByTestId('kind-landscape').click();
    await expect.poll(() => hashOf(page)).toBe('#/new?kind=landscape');
    expect(await page.getByTestId('new-run-view').getAttribute('data-kind')).toBe('landscape');
    await page.goBack();
    await expect.poll(() => page.getByTestId('new-run-view').getAttribute('data-kind')).toBe('pretrain');
    expect(app.problems).toEqual([]);
    await page.close();
  });
});

describe('the new-run form’s leave guard (web mode)', () => {
  it('asks before leaving a changed form, stays on Cancel, and keeps the draft on OK', async () => {
    const page = await app.openPage('#/new');
    await page.getByTestId('new-run-view').waitFor();
    const dialogs: string[] = [];
    let answer = false;
    page.on('dialog', (dialog: Dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void (answer ? dialog.accept() : dialog.dismiss());
    });

    // An untouched form leaves without a question.
    await page.getByTestId('nav-runs').click();
    await page.getByTestId('runs-view').waitFor();
    expect(dialogs).toEqual([]);

    await page.getByTestId('nav-new').click();
    await page.getByTestId('run-name-input').fill('my unsaved run');
    await page.getByTestId('field-epochs').fill('7');

    // Cancel: the form stays, with what was typed.
    await page.getByTestId('nav-runs').click();
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs[0]).toBe('confirm: Leave without starting? Your settings are kept as a draft.');
    await expect.poll(() => hashOf(page)).toBe('#/new');
    expect(await page.getByTestId('runs-view').count()).toBe(0);
    expect(await page.getByTestId('run-name-input').inputValue()).toBe('my unsaved run');

    // The browser's Back button is guarded too.
    await page.goBack();
    await expect.poll(() => dialogs.length).toBe(2);
    await expect.poll(() => hashOf(page)).toBe('#/new');
    expect(await page.getByTestId('new-run-view').count()).toBe(1);

    // OK: the runs show, and coming back finds the draft as it was left.
    answer = true;
    await page.getByTestId('nav-runs').click();
    await page.getByTestId('runs-view').waitFor();
    expect(dialogs).toHaveLength(3);
    await page.getByTestId('nav-new').click();
    await page.getByTestId('new-run-view').waitFor();
    expect(await page.getByTestId('run-name-input').inputValue()).toBe('my unsaved run');
    expect(await page.getByTestId('field-epochs').inputValue()).toBe('7');
    expect(app.problems).toEqual([]);
    await page.close();
  });
});

describe('the fine-tuning form’s effective budget and learning rate (web mode)', () => {
  it('shows eps in /255 and pixel units and the lr after batch scaling, as the engine resolves them', async () => {
    const page = await app.openPage('#/new?kind=finetune', { width: 1440, height: 1000 });
    await page.getByTestId('new-run-view').waitFor();
    await page.getByTestId('field-batchSize').fill('64');
    // Reference (float64): the built-in dataset's defaults, eps 8/255 and base lr 5e-3; lr = 5e-3 * 64 / 256.
    const lr = (5e-3 * 64) / 256;
    await expect.poll(() => page.getByTestId('summary-lr').innerText()).toContain(lr.toExponential(2));
    expect(lr.toExponential(2)).toBe('1.25e-3');
    expect(await page.getByTestId('summary-lr-derivation').innerText()).toBe('= 5.00e-3 (dataset default) × 64 / 256');
    expect(await page.getByTestId('summary-eps').innerText()).toContain(`8/255 = ${(8 / 255).toPrecision(4)} (linf)`);

    await page.getByTestId('field-threat.eps').fill('4');
    await page.getByTestId('field-optimizer.baseLr').fill('0.002');
    await expect
      .poll(() => page.getByTestId('summary-eps').innerText())
      .toBe(`4/255 = ${(4 / 255).toPrecision(4)} (linf)`);
    await expect
      .poll(() => page.getByTestId('summary-lr').innerText())
      .toBe(`${((2e-3 * 64) / 256).toExponential(2)}\n= 2.00e-3 × 64 / 256`);
    await page.getByTestId('run-summary').screenshot({ path: screenshotPath('finetune-effective') });
    expect(app.problems).toEqual([]);
    await page.close();
  });
});

describe('the dataset browser (web mode)', () => {
  it('clears its grid when a source fails to open, and resets the path when the kind changes', async () => {
    const page = await app.openPage('#/datasets');
    // The built-in set opens by itself.
    await expect.poll(() => page.getByTestId('dataset-tile').count(), { timeout: 60_000 }).toBeGreaterThan(0);

    await page.getByTestId('field-dataset.kind').selectOption('folder');
    const root = page.getByTestId('field-dataset.root');
    await root.fill('/no/such/image-folder');
    await page.getByTestId('dataset-open').click();
    await page.getByTestId('dataset-error').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('dataset-error').innerText()).toContain('/no/such/image-folder');
    expect(await page.getByTestId('dataset-tile').count()).toBe(0);
    expect(await page.getByTestId('dataset-classes').count()).toBe(0);

    await page.getByTestId('field-dataset.kind').selectOption('cifar10');
    await expect.poll(() => page.getByTestId('field-dataset.root').inputValue()).toBe('');
    await page.close();
  });
});

describe('exports in web mode', () => {
  it('offers the exported weights and config as browser downloads, byte for byte the written files', async () => {
    const run = await app.createRun('finetune', 'e2e classifier to download', {
      method: 'natural',
      source: { kind: 'scratch', model: 'micro' },
      dataset: { kind: 'builtin', size: 64, imageSize: 16 },
      epochs: 1,
      batchSize: 32,
      heldOut: { size: 0 },
    });
    await app.waitDone(run.id, 120_000);
    const page = await app.openPage(`#/runs/${run.id}`);
    // The run's config view shows the budget and rate it trained with (reference: the built-in set's
    // defaults, eps 8/255 and base lr 5e-3, scaled by 32 / 256).
    const effectiveEps = page.locator('[data-config-path="effective.eps"]');
    await effectiveEps.waitFor();
    expect(await effectiveEps.innerText()).toBe(`8/255 = ${(8 / 255).toPrecision(4)} (linf), the dataset’s default`);
    expect(await page.locator('[data-config-path="effective.lr"]').innerText()).toBe(
      `${((5e-3 * 32) / 256).toExponential(2)} = 5.00e-3 (the dataset’s default) × 32 / 256`,
    );
    await page.getByTestId('action-export').click();
    await page.getByTestId('export-dialog').waitFor();
    await expect.poll(() => page.getByTestId('export-file').inputValue()).toMatch(/\.safetensors$/);
    await page.getByTestId('export-write').click();
    await page.getByTestId('export-done').waitFor();
    const written = (await page.getByTestId('export-outcome-file').textContent()) ?? '';
    await page.screenshot({ path: screenshotPath('export-web-download') });

    for (const [testId, file] of [
      ['export-download', written],
      ['export-download-config', written.replace(/\.safetensors$/, '.json')],
    ] as const) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId(testId).click()]);
      expect(download.suggestedFilename()).toBe(path.basename(file));
      const saved = await download.path();
      expect(readFileSync(saved).equals(readFileSync(file))).toBe(true);
    }

    // Nothing else of the machine is handed out, even with the token.
    const refused = await fetch(
      `${app.url.replace(/\/\?.*$/, '')}/api/download?file=${encodeURIComponent('/etc/passwd')}`,
      {
        headers: { Authorization: `Bearer ${new URL(app.url).searchParams.get('token') ?? ''}` },
      },
    );
    expect(refused.status).toBe(404);
    expect(await refused.text()).toContain('not a file this workbench exported');
    expect(app.problems).toEqual([]);
    await page.close();
  }, 240_000);
});

describe('the time estimate before Start (web mode)', () => {
  it('is unknown without a measurement, measures on request, then says minutes from the measured images/s', async () => {
    const page = await app.openPage('#/new', { width: 1440, height: 1000 });
    await page.getByTestId('new-run-view').waitFor();
    await page.getByTestId('field-model').selectOption('micro');
    await page.getByTestId('field-dataset.size').fill('256');
    await page.getByTestId('field-dataset.imageSize').fill('16');
    await page.getByTestId('field-epochs').fill('2');
    await page.getByTestId('field-batchSize').fill('32');
    const estimate = page.getByTestId('summary-estimate');
    // Once the system report says which backend the engine uses.
    await expect
      .poll(() => estimate.innerText(), { timeout: 60_000 })
      .toMatch(/^unknown\nno finished pretrain run of this model on (tensorflow|wasm|cpu) yet\nMeasure$/);
    expect(await estimate.getAttribute('data-state')).toBe('no-measurement');

    await page.getByTestId('estimate-measure').click();
    await expect.poll(() => estimate.getAttribute('data-state'), { timeout: 180_000 }).toBe('known');
    const [measured] = await app.call<Run[]>('runs.list', { kind: ['pretrain'], status: 'done' });
    if (!measured?.imagesPerSecond) throw new Error('the measuring run reported no images/s');
    expect(measured.name).toMatch(/^measure · /);
    expect(measured.config).toMatchObject({ epochs: 1, dataset: { size: 128 } });
    // Reference: 8 whole batches of 32 × 2 epochs over the measured rate.
    const seconds = (Math.floor(256 / 32) * 32 * 2) / measured.imagesPerSecond;
    const about =
      seconds < 90 ? `about ${Math.max(1, Math.round(seconds))} s` : `about ${Math.round(seconds / 60)} min`;
    expect(await estimate.innerText()).toBe(
      `${about} on ${measured.backend}\nmeasured ${measured.imagesPerSecond.toPrecision(3)} images/s (1 finished run of this model)`,
    );
    await page.screenshot({ path: screenshotPath('new-run-estimate') });
    expect(app.problems).toEqual([]);
    await page.close();
  }, 240_000);
});

describe('the quick fine-tune preset (web mode)', () => {
  it('applies its settings over the chosen checkpoint and says what the run will show', async () => {
    const page = await app.openPage('#/new?kind=finetune&checkpoint=%2Ftmp%2Fsome-checkpoint');
    await page.getByTestId('new-run-view').waitFor();
    await expect.poll(() => page.getByTestId('field-source.checkpoint').inputValue()).toBe('/tmp/some-checkpoint');
    const preset = page.getByTestId('preset-quick-finetune');
    expect(await preset.innerText()).toContain('What you will see: the loss falling and the two held-out accuracies');
    await preset.click();
    await expect.poll(() => page.getByTestId('field-epochs').inputValue()).toBe('10');
    expect(await page.getByTestId('field-source.checkpoint').inputValue()).toBe('/tmp/some-checkpoint');
    expect(await page.getByTestId('field-dataset.size').inputValue()).toBe('5000');
    expect(await page.getByTestId('field-threat.eps').inputValue()).toBe('4');
    expect(await page.getByTestId('field-attack.steps').inputValue()).toBe('3');
    expect(await page.getByTestId('summary-eps').innerText()).toContain('4/255');
    expect(app.problems).toEqual([]);
    await page.close();
  });
});

describe('Download CIFAR-10 in the dataset browser (web mode, local server)', () => {
  it('says why when offline, shows progress, verifies the archive and opens it', async () => {
    // An archive in CIFAR-10's binary format with the official 10,000 records per batch (generated
    // pixels, so it compresses to little), served in two halves: the second waits until the test has
    // seen the progress.
    const archive = cifarArchive(10_000);
    const half = Math.floor(archive.length / 2);
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = http.createServer((_request, response) => {
      response.writeHead(200, { 'Content-Length': String(archive.length) });
      response.write(archive.subarray(0, half));
      void released.then(() => response.end(archive.subarray(half)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'mimir-e2e-cifar-'));
    const saved = {
      url: process.env.MIMIR_CIFAR10_URL,
      md5: process.env.MIMIR_CIFAR10_MD5,
      data: process.env.MIMIR_DATA,
    };
    try {
      process.env.MIMIR_DATA = dataRoot;
      process.env.MIMIR_CIFAR10_MD5 = createHash('md5').update(archive).digest('hex');
      // Offline: nothing listens on port 9 of this machine.
      process.env.MIMIR_CIFAR10_URL = 'http://127.0.0.1:9/cifar-10-binary.tar.gz';
      const page = await app.openPage('#/datasets', { width: 1440, height: 1000 });
      await page.getByTestId('field-dataset.kind').selectOption('cifar10');
      await page.getByTestId('cifar-download-start').click();
      const error = page.getByTestId('cifar-download-error');
      await error.waitFor({ timeout: 60_000 });
      expect(await error.innerText()).toMatch(
        /^Download of http:\/\/127\.0\.0\.1:9\/cifar-10-binary\.tar\.gz failed: .+ Check the connection .* press Download again: it resumes\.$/s,
      );

      process.env.MIMIR_CIFAR10_URL = `http://127.0.0.1:${port}/cifar-10-binary.tar.gz`;
      await page.getByTestId('cifar-download-start').click();
      const status = page.getByTestId('cifar-download-status');
      await page.getByTestId('cifar-download-progress').waitFor({ timeout: 60_000 });
      const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      await expect
        .poll(() => status.innerText(), { timeout: 60_000 })
        .toBe(`${mib(half)} of ${mib(archive.length)} from ${process.env.MIMIR_CIFAR10_URL}`);
      await page.screenshot({ path: screenshotPath('dataset-download') });
      release();

      const dir = path.join(dataRoot, 'cifar10');
      await expect.poll(() => status.innerText(), { timeout: 60_000 }).toBe(`Downloaded and verified into ${dir}.`);
      expect(readFileSync(path.join(dir, 'cifar-10-binary.tar.gz')).equals(archive)).toBe(true);
      // The browser opens it with the CIFAR-10 reader: 5 training batches of 10,000 images.
      await expect.poll(() => page.getByTestId('field-dataset.root').inputValue()).toBe(dir);
      // (The built-in set opened with the page stays shown until then.)
      const classes = page.getByTestId('dataset-classes').or(page.getByTestId('dataset-error'));
      await expect
        .poll(async () => (await classes.allInnerTexts()).join(' | '), { timeout: 60_000 })
        .toContain('10 classes · 50,000 images of 32 px');
      expect(await page.getByTestId('dataset-error').count()).toBe(0);
      // The page of images follows the description.
      await expect.poll(() => page.getByTestId('dataset-tile').count(), { timeout: 60_000 }).toBe(100);
      expect(await page.locator('[data-class="0"]').innerText()).toContain('airplane');
      expect(await page.getByTestId('cifar-download-error').count()).toBe(0);
      await page.screenshot({ path: screenshotPath('dataset-download-done') });
      await page.close();
    } finally {
      release();
      server.close();
      for (const [key, value] of [
        ['MIMIR_CIFAR10_URL', saved.url],
        ['MIMIR_CIFAR10_MD5', saved.md5],
        ['MIMIR_DATA', saved.data],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      rmSync(dataRoot, { recursive: true, force: true });
    }
  }, 240_000);
});
