import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { microPretrain, WebApp } from '../helpers/web-app';

/**
 * MAE vs MIMIR in Chromium against the real server and engine: two micro pre-training runs, each
 * fine-tuned and evaluated, compared on one page: overlaid metric curves with a legend, a tooltip of
 * exact values and PNG export, both runs' previews moved to the same step by one slider, the robust
 * accuracies side by side with their protocols, and the parameter diff. Then a run's own preview slider
 * and the full-size zoom.
 */

const app = new WebApp();
let page: Page;
/** 128 images / batch 32 = 4 steps per epoch, 2 epochs: previews at steps 0, 4 and 8. */
const STEPS = 8;
let mae: Run;
let mimir: Run;

beforeAll(async () => {
  await app.start();
  // The queue runs one job at a time, in order, so each run can name its parent's folder up front.
  mae = await app.createRun('pretrain', 'e2e MAE', microPretrain('mae'));
  mimir = await app.createRun('pretrain', 'e2e MIMIR', microPretrain('mimir'));
  for (const parent of [mae, mimir]) {
    const finetune = await app.createRun('finetune', `${parent.name} fine-tuned`, {
      method: 'pgd-at',
      source: { kind: 'pretrained', checkpoint: app.runDir(parent.id) },
      dataset: { kind: 'builtin', size: 128, imageSize: 16 },
      epochs: 1,
      batchSize: 32,
      heldOut: { size: 16 },
    });
    await app.createRun('evaluate', `${parent.name} evaluated`, {
      checkpoint: app.runDir(finetune.id),
      dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
      examples: { count: 16 },
      attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
    });
  }
});
afterAll(async () => {
  await app.stop();
});

async function pointsOf(key: string): Promise<number> {
  return Number(await page.getByTestId(`compare-chart-${key}`).getAttribute('data-points'));
}

describe('comparing runs in Chromium (web mode, real engine)', () => {
  it('shows a MAE and a MIMIR run on one page: curves, previews at one step, robust accuracy, parameters', async () => {
    await app.waitDone(mimir.id, 60_000);
    page = await app.openPage('#/runs');

    // Tick both pre-training runs in the table, then Compare.
    for (const run of [mae, mimir]) {
      await page.locator(`[data-run-id="${run.id}"]`).getByRole('checkbox').check();
    }
    await page.getByTestId('compare-selected').click();
    await page.getByTestId('compare-view').waitFor();
    expect(await page.getByTestId('compare-run').count()).toBe(2);

    // Metric curves on shared axes: one line per run, every step of both.
    for (const key of ['loss', 'mi']) {
      await expect
        .poll(() => page.getByTestId(`compare-chart-${key}`).getAttribute('data-series'), { timeout: 30_000 })
        .toBe('2');
      expect(await pointsOf(key)).toBe(2 * STEPS);
    }
    // The tooltip names both runs with their exact values at the hovered step.
    const plot = page.getByTestId('compare-chart-mi').getByRole('img');
    const box = await plot.boundingBox();
    if (!box) throw new Error('the MI chart has no box');
    const tooltips = page.locator('div').filter({ hasText: /^step \d+/ });
    // Hover again on every poll: on a loaded machine the chart may redraw after the first move
    // (its last points arriving), and ECharts hides the tooltip on a redraw until the mouse moves.
    // The tooltip is read without waiting (allTextContents): a tooltip counted and then hidden by a
    // redraw would leave textContent() waiting for it past the poll's limit.
    let nudge = 0;
    const hoveredTooltip = async (): Promise<string> => {
      nudge = (nudge + 1) % 4;
      await page.mouse.move(box.x + box.width * (0.5 + 0.03 * nudge), box.y + box.height * 0.6);
      return (await tooltips.allTextContents()).at(-1) ?? '';
    };
    await expect.poll(hoveredTooltip, { timeout: 20_000 }).toMatch(/e2e MAE:.*\d.*e2e MIMIR:.*\d/s);
    await page.screenshot({ path: screenshotPath('compare-tooltip') });

    // A chart saves as a PNG named after it.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('compare-chart-mi').getByTestId('chart-save').click(),
    ]);
    expect(download.suggestedFilename()).toBe('mutual-information-mi-x-z.png');
    const png = readFileSync(await download.path());
    expect(png.subarray(1, 4).toString()).toBe('PNG');

    // Previews: one slider moves both runs to the same step.
    const slider = page.getByTestId('compare-slider');
    await slider.waitFor();
    expect(await slider.getAttribute('max')).toBe('2'); // steps 0, 4, 8
    await slider.fill('1');
    await expect.poll(() => page.getByTestId('compare-step').textContent()).toBe('step 4');
    const steps = page.getByTestId('compare-run-step');
    expect(await steps.count()).toBe(2);
    expect(await steps.nth(0).getAttribute('data-step')).toBe('4');
    expect(await steps.nth(1).getAttribute('data-step')).toBe('4');
    await expect.poll(() => page.getByTestId('compare-preview-clean').locator('img').count()).toBe(2);
    await expect.poll(() => page.getByTestId('compare-preview-reconstruction').locator('img').count()).toBe(2);
    // Only MIMIR attacks: one adversarial row, one perturbation row with its amplification.
    expect(await page.getByTestId('compare-preview-adversarial').count()).toBe(1);
    expect(await page.getByTestId('perturbation-scale').textContent()).toMatch(/0\.5 \+ [\d.]+ × δ/);

    // Robust accuracy of each run's fine-tuned model side by side, each number with its protocol.
    await app.waitDone((await app.call<Run[]>('runs.list', { kind: 'evaluate', limit: 1 }))[0]?.id ?? '', 60_000);
    await page.getByRole('button', { name: 'Refresh' }).click();
    const robust = page.getByTestId('robust-compare');
    await expect.poll(() => robust.getByTestId('robust-cell').count(), { timeout: 15_000 }).toBe(6);
    const pgdRow = robust.locator('[data-attack="pgd20"]');
    for (const run of [mae, mimir]) {
      const cell = pgdRow.locator(`[data-run-id="${run.id}"]`);
      expect(await cell.getByTestId('robust-cell').textContent()).toMatch(/^\d+\.\d\d%$/);
      expect(await cell.textContent()).toContain(
        'ε 8/255 · 20 steps · 1 restart · best iterate per example · seed 0 · n 16',
      );
    }
    expect(await robust.locator('[data-attack="worst-case"]').count()).toBe(1);

    // Parameters: differences only shows the mode alone; all shows every setting.
    const diff = page.getByTestId('param-diff');
    expect(await diff.getByTestId('param-row').count()).toBe(1);
    expect(await diff.getByTestId('param-row').getAttribute('data-param')).toBe('mode');
    await diff.getByTestId('differences-only').uncheck();
    expect(await diff.getByTestId('param-row').count()).toBeGreaterThan(20);
    await diff.getByTestId('differences-only').check();

    await page.mouse.move(0, 0);
    await page.mouse.wheel(0, -100_000);
    await page.screenshot({ path: screenshotPath('compare-mae-vs-mimir'), fullPage: true });
    await page.close();
  }, 240_000);

  it('steps through a run’s own previews and opens one at full size, pixel for pixel', async () => {
    page = await app.openPage(`#/runs/${mimir.id}`);
    await page.getByTestId('preview-clean').locator('img').waitFor();
    expect(await page.getByTestId('preview-step').textContent()).toContain(`step ${STEPS}`);
    const slider = page.getByTestId('preview-slider');
    await slider.fill('0');
    await expect.poll(() => page.getByTestId('preview-step').textContent()).toContain('step 0 ');
    expect(await page.getByTestId('preview-clean').getAttribute('data-step')).toBe('0');

    await page.getByTestId('preview-adversarial').getByRole('button').click();
    const zoom = page.getByTestId('image-zoom');
    await zoom.waitFor();
    await page.getByTestId('zoom-magnification').selectOption('1');
    // 8 images of 16 px side by side, at full size.
    expect(await page.getByTestId('zoom-image').evaluate((img) => (img as unknown as { width: number }).width)).toBe(
      128,
    );
    await page.getByTestId('zoom-magnification').selectOption('8');
    const image = page.getByTestId('zoom-image');
    expect(await image.evaluate((img) => (img as unknown as { width: number }).width)).toBe(1024);
    const rendering = await image.evaluate(
      (img) =>
        (globalThis as unknown as { getComputedStyle(element: unknown): { imageRendering: string } }).getComputedStyle(
          img,
        ).imageRendering,
    );
    expect(rendering).toBe('pixelated');
    await page.screenshot({ path: screenshotPath('compare-preview-zoom') });
    await page.getByTestId('zoom-close').click();
    await page.mouse.wheel(0, -100_000);
    await page.screenshot({ path: screenshotPath('compare-run-previews'), fullPage: true });

    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
