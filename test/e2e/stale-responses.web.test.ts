import type { Page, Request, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { screenshotPath } from '../helpers/browser';
import { WebApp, microPretrain } from '../helpers/web-app';

/**
 * Answers that arrive out of order, made deterministic: the test holds one API answer back (Playwright
 * routes the page's /api/call requests), lets a later request through, then releases the first. The
 * renderer must show what the latest request asked for, never the late answer to an earlier one.
 */
const app = new WebApp();
let pretrainId = '';

beforeAll(async () => {
  await app.start();
  const run = await app.createRun('pretrain', 'e2e finished pre-training', microPretrain('mae', 64, 1));
  await app.waitDone(run.id, 120_000);
  pretrainId = run.id;
}, 180_000);
afterAll(async () => {
  await app.stop();
});

interface Call {
  method: string;
  input: Record<string, unknown>;
}

/** Hold back the answer to the first API call that `matches`; the others pass. */
async function holdFirst(page: Page, matches: (call: Call) => boolean) {
  let held: Route | null = null;
  let heldSignal: () => void = () => undefined;
  const isHeld = new Promise<void>((resolve) => (heldSignal = resolve));
  await page.route('**/api/call', async (route) => {
    const call = route.request().postDataJSON() as Call;
    if (held === null && matches(call)) {
      held = route;
      heldSignal();
      return;
    }
    await route.continue();
  });
  return {
    /** Resolves once the matching request was sent (and held). */
    isHeld,
    /** Let the held request through and wait until the page has read its answer. */
    async release(): Promise<void> {
      const route = held as Route | null;
      if (!route) throw new Error('nothing was held');
      const request: Request = route.request();
      const answered = page.waitForResponse((response) => response.request() === request);
      await route.continue();
      await (await answered).finished();
      // The answer's JSON is parsed and applied in tasks after the body arrives; two frames later it has been.
      await page.evaluate(() => {
        const window = globalThis as unknown as { requestAnimationFrame(callback: () => void): number };
        return new Promise<void>((resolve) =>
          window.requestAnimationFrame(() => window.requestAnimationFrame(resolve)),
        );
      });
    },
  };
}

describe('late answers to earlier requests (web mode)', () => {
  it('the dataset browser shows the class filter’s page, whatever order the answers come in', async () => {
    const page = await app.openPage('#/datasets');
    await expect.poll(() => page.getByTestId('dataset-tile').count(), { timeout: 60_000 }).toBe(100);
    const info = () => page.getByTestId('page-info').textContent();
    expect(await info()).toContain('page 1 of 50 · 5,000 images');

    // The unfiltered page 2 is slow; the filtered page 1 asked after it answers first.
    const next = await holdFirst(page, (call) => call.method === 'datasets.page' && call.input.offset === 100);
    await page.getByTestId('page-next').click();
    await next.isHeld;
    await page.getByTestId('class-filter').selectOption('5');
    await expect.poll(info, { timeout: 60_000 }).toContain('page 1 of 5 · 500 images');
    await next.release();
    expect(await info()).toContain('page 1 of 5 · 500 images');
    const labels = await page
      .getByTestId('dataset-tile')
      .evaluateAll((tiles) => tiles.map((tile) => tile.getAttribute('data-label')));
    expect(new Set(labels)).toEqual(new Set(['5']));
    await page.unroute('**/api/call');

    // While the next filter's page is on its way, the indicator describes the page on screen
    // (class 5's first page), not the offset asked for over the earlier answer's total.
    const other = await holdFirst(page, (call) => call.method === 'datasets.page' && call.input.label === 2);
    await page.getByTestId('page-next').click();
    await expect.poll(info, { timeout: 60_000 }).toContain('page 2 of 5 · 500 images');
    await page.getByTestId('class-filter').selectOption('2');
    await other.isHeld;
    expect(await info()).toContain('page 2 of 5 · 500 images');
    await page.locator('[data-testid="dataset-grid"][aria-busy="true"]').waitFor();
    await page.screenshot({ path: screenshotPath('stale-datasets-while-loading'), fullPage: true });
    await other.release();
    await expect.poll(info, { timeout: 60_000 }).toContain('page 1 of 5 · 500 images');
    await page.locator('[data-testid="dataset-grid"][aria-busy="false"]').waitFor();
    const after = await page
      .getByTestId('dataset-tile')
      .evaluateAll((tiles) => tiles.map((tile) => tile.getAttribute('data-label')));
    expect(new Set(after)).toEqual(new Set(['2']));
    await page.screenshot({ path: screenshotPath('stale-datasets-filtered'), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  }, 180_000);

  it('the new-run form lists the parents of the kind chosen last, not of the kind left', async () => {
    const page = await app.openPage('#/new');
    await page.getByTestId('new-run-view').waitFor();
    // A landscape run may start from a pre-training run: its list is slow to answer.
    const landscape = await holdFirst(
      page,
      (call) => call.method === 'runs.list' && JSON.stringify(call.input.kind) === '["finetune","pretrain"]',
    );
    await page.getByTestId('kind-landscape').click();
    await landscape.isHeld;
    // An evaluation starts from a fine-tuning run: there is none.
    await page.getByTestId('kind-evaluate').click();
    await expect.poll(() => page.getByTestId('new-run-view').getAttribute('data-kind')).toBe('evaluate');
    await page.getByText('No finished finetune run yet').waitFor({ timeout: 60_000 });
    await landscape.release();
    expect(await page.getByTestId(`parent-${pretrainId}`).count()).toBe(0);
    expect(await page.getByText('No finished finetune run yet').count()).toBe(1);

    // The same list, answered in order, does show the pre-training run under the landscape kind.
    await page.unroute('**/api/call');
    await page.getByTestId('kind-landscape').click();
    await page.getByTestId(`parent-${pretrainId}`).waitFor({ timeout: 60_000 });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });

  it('a run page shows its charts once their points have arrived, never a chart of 0 points', async () => {
    const page = await app.openPage('#/new');
    await page.getByTestId('new-run-view').waitFor();
    const metrics = await holdFirst(page, (call) => call.method === 'runs.metrics');
    await page.goto(`${app.url}#/runs/${pretrainId}`);
    await metrics.isHeld;
    await page.getByTestId('metrics-loading').waitFor();
    // The points are still on their way: no chart claims the run has none.
    expect(await page.getByTestId('chart-loss').count()).toBe(0);
    await metrics.release();
    const run = await app.call<{ step: number | null }>('runs.get', { id: pretrainId });
    await expect
      .poll(() => page.getByTestId('chart-loss').getAttribute('data-points'), { timeout: 60_000 })
      .toBe(String(run.step));
    expect(await page.getByTestId('metrics-loading').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('stale-run-page-metrics'), fullPage: true });
    expect(app.problems, app.problems.join('\n')).toEqual([]);
    await page.close();
  });
});
