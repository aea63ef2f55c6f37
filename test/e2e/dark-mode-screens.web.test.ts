import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { microPretrain, WebApp } from '../helpers/web-app';

/**
 * Dark mode on every main screen, in Chromium against the real server and engine: with the system in
 * dark mode, no visible element has a light background (the components take their colours from the
 * palette of styles/base.css). Each screen is saved as test-results/screenshots/dark-<screen>.png.
 */

const app = new WebApp();
let page: Page;
let mimir: Run;
let mae: Run;
let finetune: Run;
let evaluation: Run;
let landscape: Run;

beforeAll(async () => {
  await app.start();
  // The queue runs one job at a time, in order, so each run can name its parent's folder up front.
  mimir = await app.createRun('pretrain', 'dark MIMIR', microPretrain('mimir', 64, 1));
  mae = await app.createRun('pretrain', 'dark MAE', microPretrain('mae', 64, 1));
  finetune = await app.createRun('finetune', 'dark MIMIR fine-tuned', {
    method: 'pgd-at',
    source: { kind: 'pretrained', checkpoint: app.runDir(mimir.id) },
    dataset: { kind: 'builtin', size: 64, imageSize: 16 },
    epochs: 1,
    batchSize: 32,
    heldOut: { size: 16 },
  });
  evaluation = await app.createRun('evaluate', 'dark MIMIR evaluated', {
    checkpoint: app.runDir(finetune.id),
    dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
    examples: { count: 16 },
    attacks: [{ attack: 'natural' }, { attack: 'pgd20' }, { attack: 'corruptions', severities: [1] }],
  });
  landscape = await app.createRun('landscape', 'dark landscape', {
    checkpoint: app.runDir(finetune.id),
    dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
    examples: 32,
    grid: 5,
  });
  evaluation = await app.waitDone(evaluation.id, 240_000);
  landscape = await app.waitDone(landscape.id, 240_000);
}, 300_000);
afterAll(async () => {
  await app.stop();
});

/**
 * Browser code for page.evaluate, as text (this file is type-checked for Node, without the DOM): every
 * visible element under `root` whose own background is mostly opaque and light (relative luminance
 * above 0.8), as 'tag.class [data-testid] rgb(...)'. The corruption heatmap's cells are data colours,
 * the same in both schemes, and are left out.
 */
function lightBackgrounds(root: string): Promise<string[]> {
  return page.evaluate(`(() => {
    const channel = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
    const found = [];
    for (const element of document.querySelectorAll(${JSON.stringify(root)} + ', ' + ${JSON.stringify(root)} + ' *')) {
      if (element.matches("[data-testid='corruption-table'] td[style*='background']")) continue;
      const box = element.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      const style = getComputedStyle(element);
      if (style.visibility === 'hidden' || style.display === 'none') continue;
      const m = style.backgroundColor.match(/rgba?\\(([\\d.]+),\\s*([\\d.]+),\\s*([\\d.]+)(?:,\\s*([\\d.]+))?/);
      if (!m) continue;
      const alpha = m[4] === undefined ? 1 : Number(m[4]);
      const luminance = 0.2126 * channel(+m[1]) + 0.7152 * channel(+m[2]) + 0.0722 * channel(+m[3]);
      if (alpha > 0.5 && luminance > 0.8) {
        const name = element.tagName.toLowerCase() + [...element.classList].map((c) => '.' + c).join('');
        const id = element.getAttribute('data-testid');
        found.push(name + (id ? ' [' + id + ']' : '') + ' ' + style.backgroundColor);
      }
    }
    return found;
  })()`);
}

/** A dialog (root other than body) is shot in the viewport: its backdrop covers only that. */
async function darkScreen(name: string, root = 'body'): Promise<void> {
  expect(await lightBackgrounds(root), `light backgrounds on ${name}`).toEqual([]);
  await page.screenshot({ path: screenshotPath(`dark-${name}`), fullPage: root === 'body' });
}

describe('dark mode on the main screens in Chromium (web mode, real engine)', () => {
  it('the probe sees light cards in the light scheme, none once the system turns dark (runs list)', async () => {
    page = await app.openPage('#/runs');
    await page.locator(`[data-run-id="${evaluation.id}"]`).waitFor({ timeout: 30_000 });
    // In the light scheme the cards are white: the probe finds them, so it can fail.
    expect((await lightBackgrounds('body')).length).toBeGreaterThan(0);
    await page.emulateMedia({ colorScheme: 'dark' });
    await expect.poll(() => lightBackgrounds('body'), { timeout: 10_000 }).toEqual([]);
    await darkScreen('runs');
  });

  it('a run page (its charts, log and header)', async () => {
    await page.goto(`${app.url}#/runs/${mimir.id}`);
    await page.getByTestId('chart-loss').waitFor({ timeout: 30_000 });
    await darkScreen('run');
    await page.getByTestId('action-export').click();
    await page.getByTestId('export-dialog').waitFor();
    await darkScreen('export', "[data-testid='export-dialog']");
    await page.keyboard.press('Escape');
    await page.getByTestId('export-dialog').waitFor({ state: 'hidden' });
  });

  it('the new-run forms: pre-training, fine-tuning with an invalid field, evaluation with its attacks', async () => {
    await page.goto(`${app.url}#/new?kind=pretrain`);
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="pretrain"]')).waitFor();
    await darkScreen('new-run');
    await page.getByTestId('start-sweep').click();
    await page.getByTestId('sweep-dialog').waitFor();
    await darkScreen('sweep', "[data-testid='sweep-dialog']");
    await page.keyboard.press('Escape');
    await page.getByTestId('sweep-dialog').waitFor({ state: 'hidden' });
    await page.goto(`${app.url}#/new?kind=finetune`);
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="finetune"]')).waitFor();
    await page.getByTestId('field-epochs').fill('-3');
    await page.getByTestId('field-epochs').press('Tab');
    await page.locator('.invalid').first().waitFor();
    await darkScreen('new-run-invalid');
    await page.goto(`${app.url}#/new?kind=evaluate`);
    await page.getByTestId('new-run-view').and(page.locator('[data-kind="evaluate"]')).waitFor();
    await page.getByTestId('attack-corruptions').check();
    await darkScreen('new-evaluation');
  });

  it('an evaluation run: attack table, corruption grid', async () => {
    await page.goto(`${app.url}#/runs/${evaluation.id}`);
    await page.getByTestId('attack-table').waitFor({ timeout: 30_000 });
    await page.getByTestId('corruption-table').waitFor();
    await darkScreen('evaluation');
  });

  it('a loss-landscape run', async () => {
    await page.goto(`${app.url}#/runs/${landscape.id}`);
    await page.getByTestId('landscape-plot').waitFor({ timeout: 30_000 });
    await darkScreen('landscape');
  });

  it('the datasets browser with the built-in set open', async () => {
    await page.goto(`${app.url}#/datasets`);
    await expect.poll(() => page.getByTestId('dataset-tile').count(), { timeout: 60_000 }).toBeGreaterThan(0);
    await darkScreen('datasets');
  });

  it('the compute screen', async () => {
    await page.goto(`${app.url}#/compute`);
    await page.getByTestId('compute-view').waitFor();
    await page.getByTestId('system-panel').waitFor({ timeout: 30_000 });
    await darkScreen('compute');
  });

  it('comparing a MAE and a MIMIR run: curves and parameter differences', async () => {
    await page.goto(`${app.url}#/compare?runs=${mae.id},${mimir.id}`);
    await page.getByTestId('compare-view').waitFor();
    await expect
      .poll(() => page.getByTestId('compare-chart-loss').getAttribute('data-series'), { timeout: 30_000 })
      .toBe('2');
    await darkScreen('compare');
  });

  it('the paper-table dialog over the runs list', async () => {
    await page.goto(`${app.url}#/runs`);
    await page.locator(`[data-run-id="${evaluation.id}"]`).getByRole('checkbox').check();
    await page.getByTestId('paper-table-selected').click();
    const dialog = page.getByTestId('paper-table-dialog');
    await dialog.waitFor();
    // The dialog sits on the palette's dark surface (a card's colour), not the browser's own Canvas.
    const background = `getComputedStyle(document.querySelector("[data-testid='paper-table-dialog']")).backgroundColor`;
    expect(await page.evaluate(background)).toBe('rgb(27, 33, 41)');
    await darkScreen('paper-table', "[data-testid='paper-table-dialog']");
    expect(app.problems).toEqual([]);
  });
});
