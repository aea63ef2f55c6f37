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
 * started from the new-run form, its page's progress and per-grid-point mean ± std, then a paper table
 * of two seeds' fine-tunings whose Markdown and LaTeX numbers equal their stored evaluations.
 */

const app = new WebApp();
let base: Run;
let sweep: { sweep: Sweep; runs: Run[] };

beforeAll(async () => {
  await app.start();
  base = await app.createRun('pretrain', 'sweep base', microPretrain('mimir', 32, 1));
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
    await expect.poll(() => page.getByTestId('sweep-count').textContent()).toBe('8 runs');
    // A wrong value is refused before anything is queued.
    await page.getByTestId('sweep-values-1').fill('1, two');
    await expect
      .poll(() => page.getByTestId('sweep-problems').textContent())
      .toMatch(/--grid attack.steps: the value "two" is refused/);
    await page.getByTestId('sweep-values-1').fill('1, 2');
    await page.getByTestId('sweep-queue').click();
    await page.waitForURL(/#\/sweeps\/\d+$/);
    const experimentId = Number(/#\/sweeps\/(\d+)$/.exec(page.url())?.[1]);

    const progress = page.getByTestId('sweep-progress');
    await expect.poll(() => progress.getAttribute('data-total')).toBe('8');
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
    await expect.poll(() => rows.count()).toBe(4);
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
    await page.screenshot({ path: screenshotPath('sweep-page'), fullPage: true });
  }, 600_000);

  it('builds a grouped paper table of two seeds whose Markdown and LaTeX numbers equal the stored evaluations', async () => {
    const point = sweep.runs.filter((run) => {
      const c = run.config as { mi: { lambda: number }; attack: { steps: number } };
      return c.mi.lambda === 1e-5 && c.attack.steps === 1;
    });
    expect(point).toHaveLength(2);
    const finetunes: Run[] = [];
    const evaluations: Run[] = [];
    for (const parent of point) {
      const finetune = await app.createRun(
        'finetune',
        `ft of ${parent.name}`,
        {
          method: 'pgd-at',
          source: { kind: 'pretrained', checkpoint: app.runDir(parent.id) },
          dataset: { kind: 'builtin', size: 64, imageSize: 16 },
          epochs: 1,
          batchSize: 32,
          heldOut: { size: 0 },
          seed: (parent.config as { seed: number }).seed,
        },
        parent.id,
      );
      finetunes.push(finetune);
      evaluations.push(
        await app.createRun(
          'evaluate',
          `eval of ${finetune.name}`,
          {
            checkpoint: app.runDir(finetune.id),
            dataset: { kind: 'builtin', split: 'test', size: 64, imageSize: 16 },
            examples: { count: 16 },
            attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
            maskingChecks: false,
          },
          finetune.id,
        ),
      );
    }
    for (const run of evaluations) await app.waitDone(run.id, 300_000);
    const reports = await Promise.all(
      evaluations.map(async (run) => {
        const stored = await app.call<Evaluation[]>('evaluations.list', { runId: run.id });
        return stored.at(-1)?.results as EvaluationReport;
      }),
    );
    const pct = (values: number[]) => {
      const { mean, std } = reference(values);
      return [(mean * 100).toFixed(2), (std * 100).toFixed(2)];
    };
    const [naturalMean, naturalStd] = pct(reports.map((r) => r.naturalAccuracy));
    const [pgdMean, pgdStd] = pct(
      reports.map((r) => r.attacks.find((a) => a.key === 'pgd20')?.robustAccuracy ?? Number.NaN),
    );

    page = await app.openPage('#/runs');
    for (const run of finetunes) {
      await page.locator(`tr[data-run-id="${run.id}"] input[type="checkbox"]`).check();
    }
    await page.getByTestId('paper-table-selected').click();
    const dialog = page.getByTestId('paper-table-dialog');
    await dialog.waitFor();
    await page.getByTestId('table-column-autoattack').uncheck();
    await page.getByTestId('table-column-robust').uncheck();
    const text = page.getByTestId('table-text');
    await expect.poll(() => text.textContent()).toContain('| Run | n | Natural | PGD-20 |');
    const markdown = (await text.textContent()) ?? '';
    const row = markdown.trim().split('\n')[2] ?? '';
    expect(row).toBe(
      `| ft of lambda x steps · mi.lambda=0.00001 attack.steps=1 | 2 | ${naturalMean} ± ${naturalStd} | ${pgdMean} ± ${pgdStd} |`,
    );

    await page.getByTestId('table-format-latex').click();
    await expect.poll(() => text.getAttribute('data-format')).toBe('latex');
    const latex = (await text.textContent()) ?? '';
    expect(latex).toContain(`& 2 & ${naturalMean} $\\pm$ ${naturalStd} & ${pgdMean} $\\pm$ ${pgdStd} \\\\`);
    await page.screenshot({ path: screenshotPath('paper-table-dialog') });

    // Web mode hands the file to the browser as a download.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('table-download').click()]);
    expect(download.suggestedFilename()).toBe('mimir-table.tex');
    expect(readFileSync((await download.path()) ?? '', 'utf8')).toBe(latex);
    expect(app.problems).toEqual([]);
  }, 600_000);
});
