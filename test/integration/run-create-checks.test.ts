import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';

/**
 * runs.create (what the New-run form's Start calls) refuses a run whose dataset cannot work before it
 * is queued, saying what is wrong: a missing folder, a folder of one class for a classifier, an image
 * size the model's patch grid does not divide. No run row is left behind.
 */
let dataDir: string;
let service: AppService;
const images = mkdtempSync(path.join(os.tmpdir(), 'mimir-create-checks-'));

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-create-checks-data-'));
  service = createAppService({ launch: forkLauncher, forced: null, dataDir });
  // An image folder with a single class: cats/0.png ... cats/3.png.
  mkdirSync(path.join(images, 'one-class', 'cats'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    await sharp(Buffer.alloc(16 * 16 * 3, 40 * i), { raw: { width: 16, height: 16, channels: 3 } })
      .png()
      .toFile(path.join(images, 'one-class', 'cats', `${i}.png`));
  }
});
afterAll(() => {
  service.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(images, { recursive: true, force: true });
});

async function refusal(kind: string, config: Record<string, unknown>): Promise<string> {
  const response = await service.handle({ method: 'runs.create', input: { kind, name: 'refused', config } });
  if (response.ok) throw new Error(`runs.create accepted ${JSON.stringify(config)}`);
  expect(response.error.code).toBe('invalid-input');
  return response.error.message;
}

const scratch = { kind: 'scratch', model: 'micro' };

describe('runs.create refuses a dataset the run cannot use', () => {
  it('names a missing folder', async () => {
    const missing = path.join(images, 'no-such-folder');
    expect(
      await refusal('pretrain', { model: 'micro', dataset: { kind: 'folder', root: missing, imageSize: 16 } }),
    ).toContain(missing);
  });

  it('refuses a one-class folder for a classifier (pre-training needs no labels)', async () => {
    const dataset = { kind: 'folder', root: path.join(images, 'one-class'), imageSize: 16, testFraction: 0 };
    expect(await refusal('finetune', { source: scratch, dataset })).toMatch(
      /has 1 class \("cats"\); a classifier needs at least 2: give the folder one sub-folder per class/,
    );
  });

  it('refuses extra data whose .npz does not exist, on pre-training and fine-tuning', async () => {
    const missing = path.join(images, 'no-such.npz');
    const extraData = { path: missing, ratio: 0.5 };
    const dataset = { kind: 'builtin', size: 64, imageSize: 16 };
    const message = `extraData: ${missing} does not exist; give the path of the .npz file.`;
    expect(await refusal('pretrain', { model: 'micro', dataset, extraData })).toBe(message);
    expect(await refusal('finetune', { source: scratch, dataset, extraData })).toBe(message);
  });

  it('refuses an image size the patch grid does not divide', async () => {
    const dataset = { kind: 'builtin', size: 64, imageSize: 30 };
    expect(await refusal('pretrain', { model: 'micro', dataset })).toMatch(
      /Model micro does not fit the dataset's 30 px images \(30 px images do not split into a 4 x 4 grid/,
    );
    expect(await refusal('finetune', { source: scratch, dataset })).toMatch(/Model micro does not fit .* 30 px/);
    const listed = await service.handle({ method: 'runs.list', input: {} });
    expect(listed.ok && (listed.value as Run[]).length).toBe(0);
  });
});
