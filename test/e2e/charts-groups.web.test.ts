import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { microPretrain, WebApp } from '../helpers/web-app';

/**
 * Seed groups on the runs table and the run page, chart PNGs, constant series and dark mode, in
 * Chromium against the real server and engine: two micro MIMIR pre-trainings that differ only by seed.
 * Their learning rate is constant (no warm-up, minLr equal to the scaled base lr), so the lr chart is a
 * constant series.
 */

const app = new WebApp();
/** baseLr * batch / 256 = 2^-10 exactly, and minLr the same: a flat cosine schedule. */
const LR = 2 ** -10;
const config = (seed: number) => ({
  ...microPretrain('mimir', 64, 2),
  seed,
  optimizer: { baseLr: (LR * 256) / 32, minLr: LR, warmupEpochs: 0 },
});
let runs: Run[] = [];
let page: Page;

beforeAll(async () => {
  await app.start();
  for (const seed of [0, 1]) runs.push(await app.createRun('pretrain', `e2e group · seed ${seed}`, config(seed)));
  runs = await Promise.all(runs.map((run) => app.waitDone(run.id, 120_000)));
}, 180_000);
afterAll(async () => {
  await app.stop();
});

/** Mean and sample std in float64, as 4 significant digits (the table's format for losses). */
function meanStdText(values: number[]): string {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, x) => a + (x - mean) ** 2, 0) / (values.length - 1);
  const four = (x: number) => String(Number(x.toPrecision(4)));
  return `${four(mean)} ± ${four(Math.sqrt(variance))}`;
}

/**
 * Browser code for page.evaluate, as text (this file is type-checked for Node, without the DOM): decode a
 * base64 PNG into `image` and its pixels `pixels(x, y, w, h)`.
 */
const DECODE = `
  const image = new Image();
  image.src = 'data:image/png;base64,' + BASE64;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const pixels = (x, y, w, h) => context.getImageData(x, y, w, h).data;
`;

function inPage<T>(png: Buffer, body: string): Promise<T> {
  const source = `(async () => { const BASE64 = ${JSON.stringify(png.toString('base64'))}; ${DECODE} ${body} })()`;
  return page.evaluate(source) as Promise<T>;
}

/** The PNG's size, and how many of its top `rows` rows hold a pixel unlike its top-left corner. */
function pngHeader(png: Buffer, rows: number): Promise<{ width: number; height: number; inked: number }> {
  return inPage(
    png,
    `
    const data = pixels(0, 0, image.width, ${rows});
    let inked = 0;
    for (let y = 0; y < ${rows}; y++) {
      for (let x = 0; x < image.width; x++) {
        const i = (y * image.width + x) * 4;
        const d = Math.abs(data[i] - data[0]) + Math.abs(data[i + 1] - data[1]) + Math.abs(data[i + 2] - data[2]);
        if (d > 96) { inked++; break; }
      }
    }
    return { width: image.width, height: image.height, inked };
  `,
  );
}

/** The evaluated value of a browser expression. */
function read<T>(expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>;
}

describe('seed groups, chart PNGs and dark mode in Chromium (web mode, real engine)', () => {
  it('groups the two seeds into one runs-table row with mean ± std equal to the stored values', async () => {
    page = await app.openPage('#/runs');
    await page.getByTestId('run-row').first().waitFor();
    expect(await page.getByTestId('run-row').count()).toBe(2);
    await page.getByTestId('runs-group-by-seed').check();
    const group = page.getByTestId('group-row');
    await group.waitFor();
    expect(await page.getByTestId('run-row').count()).toBe(0);
    expect(await group.getAttribute('data-n')).toBe('2');
    expect(await group.getByTestId('group-n').textContent()).toContain('n = 2');

    const stored = await Promise.all(runs.map((run) => app.call<Run>('runs.get', { id: run.id })));
    const losses = stored.map((run) => run.summary?.loss ?? run.summary?.train_loss ?? NaN);
    const mis = stored.map((run) => run.summary?.mi ?? NaN);
    expect(losses.every(Number.isFinite) && mis.every(Number.isFinite)).toBe(true);
    expect((await group.getByTestId('group-loss').textContent())?.trim()).toBe(meanStdText(losses));
    expect((await group.getByTestId('group-mi').textContent())?.trim()).toBe(meanStdText(mis));

    // Expanding lists the member runs; sorting by loss keeps the group row.
    await group.getByTestId('group-expand').click();
    expect(await page.getByTestId('member-row').count()).toBe(2);
    await page.screenshot({ path: screenshotPath('runs-grouped') });
    await page.getByRole('button', { name: /^Loss/ }).click();
    await expect.poll(() => page.getByTestId('group-row').count()).toBe(1);

    // A filter that keeps one seed leaves no group: that run shows as a plain row.
    await page.getByTestId('runs-search').fill('seed=1');
    await expect.poll(() => page.getByTestId('run-row').count(), { timeout: 20_000 }).toBe(1);
    expect(await page.getByTestId('group-row').count()).toBe(0);
    await page.getByTestId('runs-search').fill('');
    await expect.poll(() => page.getByTestId('group-row').count(), { timeout: 20_000 }).toBe(1);
    await page.close();
  });

  it("draws the group's mean ± std band with the run's own line on the run page", async () => {
    const run = runs[0];
    if (!run) throw new Error('no run');
    page = await app.openPage(`#/runs/${run.id}`);
    const loss = page.getByTestId('chart-loss');
    await expect.poll(() => loss.getAttribute('data-points'), { timeout: 30_000 }).not.toBe('0');
    expect(await loss.getAttribute('data-bands')).toBe('0');
    await page.getByTestId('show-group').check();
    await expect.poll(() => loss.getAttribute('data-bands'), { timeout: 30_000 }).toBe('1');
    expect(await page.getByTestId('group-note').textContent()).toContain('e2e group (group, n=2)');
    // The band's last point is the mean ± sample std of both runs' stored losses at the last step.
    const stored = await app.call<{ runId: string; steps: number[]; values: (number | null)[] }[]>('runs.metrics', {
      ids: runs.map((r) => r.id),
      keys: ['loss'],
    });
    const lastStep = Math.max(...stored.flatMap((s) => s.steps));
    const [a = NaN, b = NaN] = stored.map((s) => s.values[s.steps.indexOf(lastStep)] ?? NaN);
    // n = 2: the sample std is |a - b| / sqrt(2).
    const mean = (a + b) / 2;
    const std = Math.abs(a - b) / Math.SQRT2;
    const [step, shownMean, shownStd] = ((await loss.getAttribute('data-group-last')) ?? '').split(':').map(Number);
    expect(step).toBe(lastStep);
    expect(shownMean).toBeCloseTo(mean, 12);
    expect(shownStd).toBeCloseTo(std, 12);
    await page.screenshot({ path: screenshotPath('run-group-band'), fullPage: true });
  });

  it('saves a chart as a PNG with its title and run names drawn above the plot', async () => {
    const loss = page.getByTestId('chart-loss');
    const plotHeight = (await loss.getByRole('img').boundingBox())?.height ?? 0;
    expect(plotHeight).toBeGreaterThan(100);
    const [download] = await Promise.all([page.waitForEvent('download'), loss.getByTestId('chart-save').click()]);
    expect(download.suggestedFilename()).toBe('loss.png');
    await download.saveAs(screenshotPath('chart-png-export'));
    const png = readFileSync(await download.path());
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    // Twice the plot's height plus a header of a title line and a line of run names.
    const { height } = await pngHeader(png, 1);
    const header = height - Math.round(2 * plotHeight);
    expect(header).toBeGreaterThan(60);
    // The header's rows hold ink (the title and names), not just the background.
    const { inked } = await pngHeader(png, header);
    expect(inked).toBeGreaterThan(20);
  });

  it('draws a constant series (the flat learning rate) as a flat line with a finite, centred axis', async () => {
    const lr = page.getByTestId('chart-lr');
    await lr.waitFor();
    const axis = (await lr.getAttribute('data-constant-axis')) ?? '';
    const [min = NaN, max = NaN] = axis.split(',').map(Number);
    expect(Number.isFinite(min) && Number.isFinite(max)).toBe(true);
    expect(min).toBeLessThan(LR);
    expect(max).toBeGreaterThan(LR);
    expect((min + max) / 2).toBeCloseTo(LR, 12);
    await lr.scrollIntoViewIfNeeded();
    await lr.screenshot({ path: screenshotPath('constant-series') });
  });

  it('keeps the sidebar in place while the page scrolls', async () => {
    await read('window.scrollTo(0, 0)');
    const before = await page.locator('.sidebar').boundingBox();
    await read('window.scrollTo(0, document.body.scrollHeight)');
    await expect.poll(() => read<number>('window.scrollY')).toBeGreaterThan(200);
    const after = await page.locator('.sidebar').boundingBox();
    // Within a pixel: a sticky box may land on another sub-pixel offset after the scroll.
    expect(Math.abs((after?.y ?? NaN) - (before?.y ?? NaN))).toBeLessThan(1);
    expect(Math.abs((after?.height ?? NaN) - (before?.height ?? NaN))).toBeLessThan(1);
    await read('window.scrollTo(0, 0)');
  });

  it('follows the system into dark mode: page colours and chart theme', async () => {
    const background = () => read<string>('getComputedStyle(document.documentElement).backgroundColor');
    expect(await background()).toBe('rgb(245, 246, 248)');
    await page.emulateMedia({ colorScheme: 'dark' });
    await expect.poll(background).toBe('rgb(18, 22, 28)');
    const card = await read<string>("getComputedStyle(document.querySelector('.card')).backgroundColor");
    expect(card).toBe('rgb(27, 33, 41)');
    // The chart re-rendered in the dark theme: a saved PNG has the dark background.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('chart-loss').getByTestId('chart-save').click(),
    ]);
    const corner = await inPage<number[]>(
      readFileSync(await download.path()),
      'return [...pixels(2, image.height - 2, 1, 1)].slice(0, 3);',
    );
    expect(corner).toEqual([27, 33, 41]);
    await page.screenshot({ path: screenshotPath('dark-mode'), fullPage: true });
    await page.getByTestId('nav-runs').click();
    await page.getByTestId('runs-group-by-seed').check();
    await page.getByTestId('group-expand').click();
    await page.getByTestId('member-row').first().waitFor();
    await page.screenshot({ path: screenshotPath('dark-mode-runs') });
  });
});
