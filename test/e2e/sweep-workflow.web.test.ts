import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';
import type { Evaluation, Run } from '../../src/shared/store-types';
import type { Sweep } from '../../src/shared/sweep';
import { screenshotPath } from '../helpers/browser';
import { reference } from '../helpers/table-store';
import { microPretrain, WebApp } from '../helpers/web-app';

/**
 * The research workflow in Chromium against the real server and engine: a 2 x 2 sweep with 2 seeds
 * started from the new-run form, its page's progress, per-grid-point mean ± std and parallel coordinates,
 * a grouped Compare; the whole sweep fine-tuned in one action and a grouped paper table whose Markdown
 * and LaTeX numbers equal the stored evaluations; the runs table at 1280 px.
 */

const app = new WebApp();
let base: Run;
let sweep: { sweep: Sweep; runs: Run[] };
let finetuned: Run[] = [];

beforeAll(async () => {
  await app.start();
  base = await app.createRun('pretrain', 'sweep base', microPretrain('mimir', 96, 2));
  await app.waitDone(base.id, 180_000);
}, 240_000);
afterAll(async () => {
  await app.stop();
});

/** The table's rule for numbers that are not accuracies: 4 significant digits. */
const sig = (x: number) => String(Number(x.toPrecision(4)));

describe('sweeps and paper tables in the browser', () => {
  let page: Page;

  it('queues a 2 x 2 sweep with 2 seeds from the form and shows its progress and mean ± std per grid point', async () => {
    page = await app.openPage(`#/new?from=${base.id}`);
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('start-sweep').click();
    await page.getByTestId('sweep-name').fill('lambda x steps');
    await page.getByTestId('sweep-path-0').fill('mi.lambda');
    await page.getByTestId('sweep-values-0').fill('1e-5, 1e-3');
    await page.getByTestId('sweep-add-axis').click();
    await page.getByTestId('sweep-path-1').fill('attack.steps');
    await page.getByTestId('sweep-values-1').fill('1, 2');
    await page.getByTestId('sweep-seeds').fill('0,1');
    await expect.poll(() => page.getByTestId('sweep-count').textContent(), { timeout: 30_000 }).toBe('8 runs');
    // A wrong value is refused before anything is queued.
    await page.getByTestId('sweep-values-1').fill('1, two');
    await expect
      .poll(() => page.getByTestId('sweep-problems').textContent(), { timeout: 30_000 })
      .toMatch(/--grid attack.steps: the value "two" is refused/);
    await page.getByTestId('sweep-values-1').fill('1, 2');
    await page.getByTestId('sweep-queue').click();
    await page.waitForURL(/#\/sweeps\/\d+$/);
    const experimentId = Number(/#\/sweeps\/(\d+)$/.exec(page.url())?.[1]);

    const progress = page.getByTestId('sweep-progress');
    await expect.poll(() => progress.getAttribute('data-total'), { timeout: 30_000 }).toBe('8');
    await expect.poll(() => progress.getAttribute('data-ended'), { timeout: 400_000, interval: 500 }).toBe('8');
    expect(await progress.getAttribute('data-done')).toBe('8');

    sweep = await app.call('sweeps.get', { experimentId });
    const configs = sweep.runs.map(
      (run) => run.config as { mi: { lambda: number }; attack: { steps: number }; seed: number },
    );
    expect(configs.map((c) => [c.mi.lambda, c.attack.steps, c.seed]).sort()).toEqual(
      [
        [1e-5, 1, 0],
        [1e-5, 1, 1],
        [1e-5, 2, 0],
        [1e-5, 2, 1],
        [1e-3, 1, 0],
        [1e-3, 1, 1],
        [1e-3, 2, 0],
        [1e-3, 2, 1],
      ].sort(),
    );

    // Every grid point is one row of n = 2 whose loss is the mean ± sample std of its two runs' final loss.
    const rows = page.getByTestId('sweep-results').locator('tbody tr');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(4);
    const byId = new Map(sweep.runs.map((run) => [run.id, run]));
    for (let i = 0; i < 4; i++) {
      const row = rows.nth(i);
      const ids = ((await row.getAttribute('data-run-ids')) ?? '').split(',');
      expect(ids).toHaveLength(2);
      const members = ids.map((id) => byId.get(id) as Run);
      const [a, b] = members.map((run) => run.config as { mi: unknown; attack: unknown; seed: number });
      expect([a?.mi, a?.attack]).toEqual([b?.mi, b?.attack]);
      expect(new Set(members.map((run) => (run.config as { seed: number }).seed))).toEqual(new Set([0, 1]));
      const { mean, std } = reference(members.map((run) => run.summary?.loss ?? Number.NaN));
      expect(await row.locator('td[data-column="summary.loss"]').textContent()).toBe(`${sig(mean)} ± ${sig(std)}`);
      expect(await row.locator('td').nth(1).textContent()).toBe('2');
    }

    // Parallel coordinates: brushing the upper half of the lambda axis (log scale, 1e-5 at the bottom,
    // 1e-3 at the top) selects the four lambda = 1e-3 runs.
    const parallel = page.getByTestId('parallel-chart');
    await expect.poll(() => parallel.getAttribute('data-selected'), { timeout: 30_000 }).toBe('8');
    const box = await parallel.boundingBox();
    if (!box) throw new Error('the parallel-coordinates chart is not laid out');
    const x = box.x + Number(await parallel.getAttribute('data-left'));
    await page.mouse.move(x, box.y + 44);
    await page.mouse.down();
    await page.mouse.move(x, box.y + 50 + (box.height - 80) / 2 - 10, { steps: 8 });
    await page.mouse.up();
    await expect.poll(() => parallel.getAttribute('data-selected'), { timeout: 30_000 }).toBe('4');
    expect(await page.getByTestId('brushed-count').textContent()).toBe('4 selected');
    const brushedIds = await page
      .getByTestId('sweep-runs')
      .locator('tr.brushed')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run-id')));
    expect(brushedIds).toHaveLength(4);
    for (const id of brushedIds) {
      expect((byId.get(id ?? '')?.config as { mi: { lambda: number } }).mi.lambda).toBe(1e-3);
    }
    await page.screenshot({ path: screenshotPath('sweep-page'), fullPage: true });

    // Compare all eight runs grouped by seed: one line and one mean ± std band per grid point.
    await page.getByTestId('sweep-compare').click();
    await page.waitForURL(/#\/compare\?runs=/);
    const loss = page.getByTestId('compare-chart-loss');
    await expect.poll(() => loss.getAttribute('data-series'), { timeout: 60_000 }).toBe('8');
    await page.getByTestId('compare-group-seeds').check();
    await expect.poll(() => loss.getAttribute('data-series'), { timeout: 30_000 }).toBe('4');
    await expect.poll(() => loss.getAttribute('data-bands'), { timeout: 30_000 }).toBe('4');
    await page.screenshot({ path: screenshotPath('grouped-compare'), fullPage: true });
    await page.getByTestId('compare-group-seeds').uncheck();

    // The sweep is listed under Sweeps and links back to its page.
    await page.getByTestId('nav-sweeps').click();
    const listed = page.getByTestId('sweep-row');
    await expect.poll(() => listed.count(), { timeout: 30_000 }).toBe(1);
    expect(await listed.textContent()).toContain('lambda x steps');
    await listed.getByRole('link').click();
    await page.waitForURL(new RegExp(`#/sweeps/${experimentId}$`));
  }, 600_000);

  it('fine-tunes the whole sweep in one action; its grouped paper table equals the stored evaluations', async () => {
    // From the sweep page: one fine-tuning set up in the form, queued from each of the 8 finished runs.
    await page.getByTestId('sweep-follow-up').click();
    await page.waitForURL(/#\/new\?kind=finetune/);
    await page.getByTestId('sweep-from-note').waitFor();
    await page.getByTestId('field-epochs').fill('1');
    await page.getByTestId('field-batchSize').fill('32');
    await page.getByTestId('field-heldOut.size').fill('0');
    await page.getByTestId('form-valid').waitFor();
    await page.getByTestId('start-sweep').click();
    await expect
      .poll(() => page.getByTestId('sweep-from').textContent(), { timeout: 30_000 })
      .toContain('each of the 8 finished runs of “lambda x steps”');
    await page.getByTestId('sweep-name').fill('ft all');
    await expect.poll(() => page.getByTestId('sweep-count').textContent(), { timeout: 30_000 }).toBe('8 runs');
    await page.getByTestId('sweep-queue').click();
    await page.waitForURL(/#\/sweeps\/\d+$/);
    const experimentId = Number(/#\/sweeps\/(\d+)$/.exec(page.url())?.[1]);
    const progress = page.getByTestId('sweep-progress');
    await expect.poll(() => progress.getAttribute('data-ended'), { timeout: 400_000, interval: 500 }).toBe('8');
    expect(await progress.getAttribute('data-done')).toBe('8');
    const finetunes = (await app.call<{ runs: Run[] }>('sweeps.get', { experimentId })).runs;
    const parents = new Map(sweep.runs.map((run) => [run.id, run]));
    for (const run of finetunes) {
      const parent = parents.get(run.parentRunId ?? '');
      expect(parent, run.name).toBeDefined();
      expect(run.config).toMatchObject({ seed: (parent?.config as { seed: number }).seed, epochs: 1 });
      expect((run.config.source as { checkpoint: string }).checkpoint).toBe(app.runDir(parent?.id ?? ''));
    }

    // Evaluate each fine-tuning (natural and PGD-20 on 16 test images).
    const evaluations: Run[] = [];
    for (const finetune of finetunes) {
      evaluations.push(
        await app.createRun('evaluate', `eval of ${finetune.name}`, {
          checkpoint: app.runDir(finetune.id),
          dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
          examples: { count: 16 },
          attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
          maskingChecks: false,
        }),
      );
    }
    for (const run of evaluations) await app.waitDone(run.id, 300_000);
    const reportOf = async (run: Run) =>
      (await app.call<Evaluation[]>('evaluations.list', { runId: run.id })).at(-1)?.results as EvaluationReport;
    const reports = await Promise.all(evaluations.map(reportOf));
    finetuned = finetunes;

    // Expected rows: one per pre-training grid point, mean ± sample std over its two seeds.
    const pct = (values: number[]) => {
      const { mean, std } = reference(values);
      return `${(mean * 100).toFixed(2)} ± ${(std * 100).toFixed(2)}`;
    };
    const expectedRows = [1e-5, 1e-3].flatMap((lambda) =>
      [1, 2].map((steps) => {
        const members = finetunes.flatMap((run, i) => {
          const c = parents.get(run.parentRunId ?? '')?.config as { mi: { lambda: number }; attack: { steps: number } };
          return c.mi.lambda === lambda && c.attack.steps === steps ? [reports[i] as EvaluationReport] : [];
        });
        expect(members).toHaveLength(2);
        const natural = pct(members.map((r) => r.naturalAccuracy));
        const pgd = pct(members.map((r) => r.attacks.find((a) => a.key === 'pgd20')?.robustAccuracy ?? Number.NaN));
        return { label: `pretrain.attack.steps=${steps} pretrain.mi.lambda=${String(lambda)}`, natural, pgd };
      }),
    );

    await page.getByTestId('sweep-paper-table').click();
    await page.getByTestId('paper-table-dialog').waitFor();
    await page.getByTestId('table-column-autoattack').uncheck();
    await page.getByTestId('table-column-robust').uncheck();
    const text = page.getByTestId('table-text');
    // The table is rebuilt after each change of columns: wait for the one with exactly these columns.
    const header = async () => ((await text.textContent()) ?? '').split('\n')[0];
    await expect.poll(header, { timeout: 30_000 }).toBe('| Run | n | Natural | PGD-20 |');
    const markdown = ((await text.textContent()) ?? '').trim().split('\n');
    expect(markdown).toHaveLength(2 + 4);
    expect([...markdown.slice(2)].sort()).toEqual(
      expectedRows.map((row) => `| ${row.label} | 2 | ${row.natural} | ${row.pgd} |`).sort(),
    );

    await page.getByTestId('table-format-latex').click();
    await expect.poll(() => text.getAttribute('data-format'), { timeout: 30_000 }).toBe('latex');
    const latex = (await text.textContent()) ?? '';
    const tex = (cell: string) => cell.replace('±', '$\\pm$');
    for (const row of expectedRows) {
      expect(latex).toContain(`${row.label} & 2 & ${tex(row.natural)} & ${tex(row.pgd)} \\\\`);
    }
    await page.screenshot({ path: screenshotPath('paper-table-dialog') });

    // Web mode hands the file to the browser as a download.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('table-download').click()]);
    expect(download.suggestedFilename()).toBe('mimir-table.tex');
    expect(readFileSync((await download.path()) ?? '', 'utf8')).toBe(latex);
  }, 900_000);

  it('fits the runs table in 1280 px with chosen columns (remembered), a structured filter, bulk tagging; shortcuts', async () => {
    page = await app.openPage('#/runs', { width: 1280, height: 800 });
    const rows = page.getByTestId('run-row');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(1 + 8 + 8 + 8);
    /** How far the page and the table's box are wider than what shows (0: no horizontal overflow). */
    interface Box {
      scrollWidth: number;
      clientWidth: number;
    }
    const excess = (box: unknown) => (box as Box).scrollWidth - (box as Box).clientWidth;
    const overflow = async () => ({
      page: await page.locator('html').evaluate(excess),
      table: await page.locator('.table-wrap').evaluate(excess),
    });
    expect(await overflow()).toEqual({ page: 0, table: 0 });

    // Natural and worst-case accuracy of the latest evaluation are columns; a fine-tuning shows its evaluation's.
    const [ft] = finetuned;
    if (!ft) throw new Error('no fine-tuning run');
    const stored = await app.call<Evaluation[]>('evaluations.list', { modelRunId: ft.id });
    const report = stored.at(-1)?.results as EvaluationReport;
    const cell = page.locator(`tr[data-run-id="${ft.id}"]`).getByTestId('figure-natural');
    await expect
      .poll(() => cell.textContent(), { timeout: 30_000 })
      .toBe(`${(report.naturalAccuracy * 100).toFixed(1)}%`);

    // Choose columns: hide Model, show Dataset; the choice survives a reload.
    await page.getByTestId('runs-columns').locator('summary').click();
    await page.getByTestId('runs-column-model').uncheck();
    await page.getByTestId('runs-column-dataset').check();
    const headers = () => page.getByTestId('runs-table').locator('thead th').allTextContents();
    expect((await headers()).map((h) => h.trim())).toContain('Dataset');
    await page.reload();
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(25);
    const after = (await headers()).map((h) => h.replace(/[▲▼]/g, '').trim());
    expect(after).toContain('Dataset');
    expect(after).not.toContain('Model');
    expect(await overflow()).toEqual({ page: 0, table: 0 });

    // A structured filter: MIMIR runs with lambda below 1e-4 and 2 attack steps are the two seeds of one grid point.
    await page.getByTestId('runs-search').fill('mode=mimir lambda<1e-4 steps=2');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(2);
    const expected = sweep.runs
      .filter((run) => {
        const c = run.config as { mi: { lambda: number }; attack: { steps: number } };
        return c.mi.lambda < 1e-4 && c.attack.steps === 2;
      })
      .map((run) => run.id)
      .sort();
    const shownIds = async () =>
      (await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run-id')))).sort();
    expect(await shownIds()).toEqual(expected);
    await page.screenshot({ path: screenshotPath('runs-table-1280'), fullPage: true });
    // A bad term says what is wrong.
    await page.getByTestId('runs-search').fill('robust>high');
    await expect
      .poll(() => page.getByTestId('runs-query-errors').textContent(), { timeout: 30_000 })
      .toContain('> compares numbers; "high" is not one');

    // Bulk tag the two filtered runs.
    await page.getByTestId('runs-search').fill('mode=mimir lambda<1e-4 steps=2');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(2);
    for (const id of expected) await page.locator(`tr[data-run-id="${id}"] input[type="checkbox"]`).check();
    await page.getByTestId('bulk-tag-input').fill('ablation');
    await page.getByTestId('bulk-tag').click();
    for (const id of expected) {
      await expect
        .poll(async () => (await app.call<Run>('runs.get', { id })).tags, { timeout: 30_000 })
        .toEqual(['ablation']);
    }

    // Keyboard shortcuts: ? lists them, n opens the new-run form, / comes back and focuses the search.
    await page.getByRole('heading', { name: 'Runs' }).click();
    await page.keyboard.press('?');
    await expect.poll(() => page.getByTestId('shortcuts-help').isVisible(), { timeout: 30_000 }).toBe(true);
    await page.screenshot({ path: screenshotPath('shortcuts-help') });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByTestId('shortcuts-help').isVisible(), { timeout: 30_000 }).toBe(false);
    await page.keyboard.press('n');
    await page.waitForURL(/#\/new$/);
    await page.getByRole('heading', { level: 1 }).click();
    await page.keyboard.press('/');
    await page.waitForURL(/#\/runs$/);
    const search = page.getByTestId('runs-search');
    const focused = (el: unknown) => {
      const node = el as { ownerDocument: { activeElement: unknown } };
      return node.ownerDocument.activeElement === el;
    };
    await expect.poll(() => search.evaluate(focused), { timeout: 30_000 }).toBe(true);
    expect(app.problems).toEqual([]);
  }, 300_000);
});
