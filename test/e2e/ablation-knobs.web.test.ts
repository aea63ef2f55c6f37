import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/engine/io/npy';
import type { Run } from '../../src/shared/store-types';
import { screenshotPath } from '../helpers/browser';
import { int64Npy, npz } from '../helpers/npz';
import { WebApp } from '../helpers/web-app';

/**
 * The ablation knobs in the new-run form, in Chromium against the real server and engine: the
 * decoder size (Table XIX), MI at block k without the final norm (Table XXI) and extra generated
 * data from an .npz (Table XVIII) are set in the form, and the run trains with them.
 */

const app = new WebApp();
let page: Page;

beforeAll(async () => {
  await app.start();
});
afterAll(async () => {
  await app.stop();
});

describe('ablation knobs in the new-run form (web mode, real engine)', () => {
  it('sets the decoder size, the MI layer and extra data, and the run trains with them', async () => {
    const file = path.join(app.dataDir, 'generated.npz');
    const n = 24;
    const images = Uint8Array.from({ length: n * 16 * 16 * 3 }, (_, i) => (i * 37) % 256);
    writeFileSync(
      file,
      npz({
        image: encodeNpy({ dtype: 'uint8', shape: [n, 16, 16, 3], data: images }),
        label: int64Npy(Array.from({ length: n }, (_, i) => i % 10)),
      }),
    );

    page = await app.openPage('#/new');
    const fill = (testId: string, value: string) => page.getByTestId(testId).fill(value);
    await page.getByTestId('field-model').selectOption('micro');
    await fill('field-dataset.size', '64');
    await fill('field-dataset.imageSize', '16');
    await fill('field-epochs', '1');
    await fill('field-batchSize', '16');

    await page.getByTestId('field-decoder-enabled').check();
    await fill('field-decoder.depth', '1');
    await fill('field-decoder.width', '16');
    await page.getByTestId('field-mi.layer.block-option-block number').click();
    await fill('field-mi.layer.block', '1');
    await page.getByTestId('field-mi.layer.finalNorm').uncheck();
    await page.getByTestId('field-extraData-enabled').check();
    await fill('field-extraData.path', file);
    await fill('field-extraData.ratio', '0.5');
    await fill('run-name-input', 'e2e ablation knobs');
    await page.getByTestId('form-valid').waitFor();

    await page.getByTestId('section-training').screenshot({ path: screenshotPath('ablation-form-decoder') });
    await page.getByTestId('section-mi').screenshot({ path: screenshotPath('ablation-form-mi-layer') });
    await page.getByTestId('section-dataset').screenshot({ path: screenshotPath('ablation-form-extra-data') });

    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
    const run: Run = await app.waitDone(id, 120_000);
    expect(run.config).toMatchObject({
      decoder: { depth: 1, width: 16 },
      mi: { layer: { block: 1, finalNorm: false } },
      extraData: { path: file, ratio: 0.5 },
    });
    // 64 dataset images at 8 a batch (the other 8 generated): 8 steps, not 64 / 16 = 4.
    expect(run.totalSteps).toBe(8);
    expect(app.problems).toEqual([]);
  }, 180_000);
});
