import type { Dialog, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebApp } from '../helpers/web-app';

/**
 * The router (vue-router, hash history) and the new-run form's leave guard, in Chromium against the
 * real web server: every address the app has used opens its screen, links and navigation write the
 * same `#/…` addresses, and leaving a form the user changed asks first while keeping the draft.
 */

const app = new WebApp();

beforeAll(async () => {
  await app.start();
}, 60_000);
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
  }, 120_000);
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
  }, 120_000);
});
