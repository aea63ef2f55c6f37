import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import type { EvaluationReport } from '../../src/shared/evaluation';

/** Steps on the app's New-run forms and run pages shared by the end-to-end tests. */

/** The id of the run the page shows (#/runs/<id>). */
export function runIdFromUrl(page: Page): string {
  return decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
}

/** Waits until the run page shows its run with `status`. */
export async function waitRunStatus(page: Page, status: string, timeout: number): Promise<void> {
  await page
    .getByTestId('run-view')
    .getByTestId('run-status')
    .and(page.locator(`[data-status="${status}"]`))
    .waitFor({ timeout });
}

/** Clicks the run page's Fine-tune, Evaluate or Loss-landscape action and waits for its New-run form. */
export async function openActionForm(page: Page, kind: 'finetune' | 'evaluate' | 'landscape'): Promise<void> {
  await page.getByTestId(`action-${kind}`).click();
  await page
    .getByTestId('new-run-view')
    .and(page.locator(`[data-kind="${kind}"]`))
    .waitFor();
}

/** Fills the form's fields (test ids `field-<name>`), in the order given. */
export async function fillFields(page: Page, values: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(values)) await page.getByTestId(`field-${name}`).fill(value);
}

/** Starts the form's run and waits for its run page; the new run's id. */
export async function startRun(page: Page): Promise<string> {
  await page.getByTestId('start-run').click();
  await page.getByTestId('run-view').waitFor();
  return runIdFromUrl(page);
}

/** The evaluation page's attack table gives every attack of the report its robust accuracy. */
export async function expectAttackTable(page: Page, report: EvaluationReport): Promise<void> {
  const table = page.getByTestId('attack-table');
  await table.waitFor();
  for (const outcome of report.attacks) {
    const row = table.locator(`[data-attack="${outcome.key}"]`);
    expect((await row.getByTestId('robust-accuracy').textContent())?.trim()).toContain(
      `${(outcome.robustAccuracy * 100).toFixed(2)}%`,
    );
  }
}
