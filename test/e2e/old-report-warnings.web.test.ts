import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store';
import { screenshotPath } from '../helpers/browser';
import { storedReport } from '../helpers/evaluation-report';
import { WebApp } from '../helpers/web-app';

/**
 * Reports stored before warnings had kinds hold them as bare strings (in report.json and the store's
 * evaluations table). The run page still shows such a report, its warnings read as kind `other`.
 */

const OLD_SENTENCE = 'CW-l2 is unbounded here: it counts every flip at any l_2 distance (see the norms in its record).';
const OLD_MASKING = '3 of 8 examples have an all-zero input gradient: gradient-based attacks cannot move them.';

const app = new WebApp();
let runId = '';

beforeAll(async () => {
  const store = RunStore.open(path.join(app.dataDir, 'mimir.db'));
  const run = store.createRun({ name: 'evaluation stored before warning kinds', kind: 'evaluate', config: {} });
  store.updateRunStatus(run.id, 'running');
  store.updateRunStatus(run.id, 'done');
  const results = JSON.parse(JSON.stringify(storedReport({ natural: 0.9, attacks: { pgd20: 0.4, 'cw-l2': 0.3 } })));
  results.attacks[1].warnings = [OLD_SENTENCE];
  results.masking = {
    zeroGradient: { count: 3, total: 8, fraction: 0.375, flagged: true },
    warnings: [OLD_MASKING],
    examples: { count: 8, ids: [0, 1, 2, 3, 4, 5, 6, 7], source: 'builtin/test' },
  };
  store.addEvaluation(run.id, { modelCheckpoint: '/runs/x/checkpoints/final', protocol: {}, results });
  store.close();
  runId = run.id;
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

describe('an evaluation report stored with string warnings (web mode)', () => {
  it('shows on the run page with its warnings, as kind other', async () => {
    const page = await app.openPage(`#/runs/${runId}`);
    const banner = page.getByTestId('masking-warning');
    await banner.waitFor({ timeout: 30_000 });
    expect(await banner.getAttribute('data-warning-kinds')).toBe('other');
    expect(await banner.textContent()).toContain(`Possible gradient masking. ${OLD_MASKING} Robust accuracy`);
    const cwWarning = page.locator('[data-attack="cw-l2"] .warning');
    expect(await cwWarning.getAttribute('data-warning-kind')).toBe('other');
    expect(await cwWarning.textContent()).toBe(`⚠ ${OLD_SENTENCE}`);
    expect(await page.locator('[data-attack="pgd20"] .warning').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('evaluation-old-string-warnings'), fullPage: true });
    expect(app.problems).toEqual([]);
  });
});
