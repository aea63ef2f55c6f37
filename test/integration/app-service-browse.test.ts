import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuiltinDataset } from '../../src/engine/data';
import { readSafetensors } from '../../src/engine/io/safetensors';
import { disposeParams, type ParamMap } from '../../src/engine/model';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { ApiMethod, ApiOutput } from '../../src/shared/api';
import { BUILTIN_CLASSES, BuiltinSource } from '../../src/shared/dataset-config';
import { useBackend } from '../helpers/backend';
import { trainedClassifierCheckpoint } from '../engine/export/fixtures';
import { readSafetensorsHeader } from '../../src/engine/io/safetensors';
import { runMimir } from '../helpers/cli';

/**
 * The app API's dataset browser and checkpoint catalogue through the service (no window, no jobs): pages
 * hold the right images in the right places, a class filter keeps its class, large images are
 * downsampled, requests for what is not there say so, and an export imported back holds the same weights;
 * a ConvNeXt checkpoint exports through the PyTorch engine with timm's names (its timm parity: test/torch/hier-export.test.ts).
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-browse-'));
let service: AppService;
let classifier: { path: string; params: ParamMap };

beforeAll(async () => {
  await useBackend('cpu');
  service = createAppService({ launch: forkLauncher, forced: null, dataDir });
  classifier = await trainedClassifierCheckpoint(path.join(dataDir, 'model'), { classes: 4, steps: 2 });
});
afterAll(() => {
  disposeParams(classifier.params);
  service.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call<M extends ApiMethod>(method: M, input: unknown): Promise<ApiOutput<M>> {
  const response = await service.handle({ method, input });
  if (!response.ok) throw Object.assign(new Error(response.error.message), { code: response.error.code });
  return response.value as ApiOutput<M>;
}

async function failure(method: ApiMethod, input: unknown): Promise<{ code: string; message: string }> {
  const response = await service.handle({ method, input });
  if (response.ok) throw new Error(`${method} succeeded`);
  return response.error;
}

async function rawPixels(base64: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(Buffer.from(base64, 'base64')).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

const SOURCE = { kind: 'builtin', size: 50, classes: 5, imageSize: 12 } as const;

describe('datasets.describe / page / image', () => {
  it('describes the built-in set with its class counts and explanations', async () => {
    const info = await call('datasets.describe', { source: SOURCE });
    expect(info).toMatchObject({ length: 50, numClasses: 5, imageSize: 12, classCounts: [10, 10, 10, 10, 10] });
    expect(info.classInfo?.map((c) => c.name)).toEqual(BUILTIN_CLASSES.slice(0, 5).map((c) => c.name));
  });

  it('puts each image of a page in its cell of the sheet, pixel for pixel', async () => {
    const page = await call('datasets.page', { source: SOURCE, offset: 10, limit: 7 });
    expect(page.indices).toEqual([10, 11, 12, 13, 14, 15, 16]);
    expect(page.labels).toEqual([0, 1, 2, 3, 4, 0, 1]);
    expect(page).toMatchObject({ total: 50, columns: 7, tileSize: 12, imageSize: 12 });
    const sheet = await rawPixels(page.png ?? '');
    expect([sheet.width, sheet.height]).toEqual([7 * 12, 12]);
    const expected = await new BuiltinDataset(BuiltinSource.parse(SOURCE)).get(page.indices);
    let worst = 0;
    for (let n = 0; n < 7; n++)
      for (let y = 0; y < 12; y++)
        for (let x = 0; x < 12; x++)
          for (let c = 0; c < 3; c++) {
            const want = Math.round((expected.images[((n * 12 + y) * 12 + x) * 3 + c] ?? 0) * 255);
            const got = sheet.data[(y * sheet.width + n * 12 + x) * 3 + c] ?? -1;
            worst = Math.max(worst, Math.abs(want - got));
          }
    expect(worst).toBe(0);
  });

  it('pages through one class only', async () => {
    const page = await call('datasets.page', { source: SOURCE, offset: 2, limit: 100, label: 3 });
    expect(page.total).toBe(10);
    expect(page.indices).toEqual([13, 18, 23, 28, 33, 38, 43, 48]);
    expect(new Set(page.labels)).toEqual(new Set([3]));
    const past = await call('datasets.page', { source: SOURCE, offset: 40, limit: 10, label: 3 });
    expect(past).toMatchObject({ total: 10, offset: 10, indices: [], png: null });
  });

  it('downsamples large images in the sheet and gives each at full size on its own', async () => {
    const large = { kind: 'builtin', size: 4, imageSize: 200 } as const;
    const page = await call('datasets.page', { source: large, limit: 4 });
    expect(page.tileSize).toBe(66); // 200 px boxed by 3
    const sheet = await rawPixels(page.png ?? '');
    expect([sheet.width, sheet.height]).toEqual([4 * 66, 66]);
    const image = await call('datasets.image', { source: large, index: 3 });
    expect(image).toMatchObject({ index: 3, label: 3, className: BUILTIN_CLASSES[3]?.name, imageSize: 200 });
    const full = await rawPixels(image.png);
    expect([full.width, full.height]).toEqual([200, 200]);
  });

  it('says what is wrong with a request for what is not there', async () => {
    expect(await failure('datasets.page', { source: SOURCE, label: 7 })).toMatchObject({
      code: 'invalid-input',
      message: expect.stringContaining('no class 7'),
    });
    expect(await failure('datasets.image', { source: SOURCE, index: 50 })).toMatchObject({ code: 'invalid-input' });
    const missing = path.join(dataDir, 'no-cifar');
    expect(await failure('datasets.describe', { source: { kind: 'cifar10', root: missing } })).toMatchObject({
      code: 'not-found',
      message: expect.stringContaining(missing),
    });
  });
});

describe('checkpoints and exports', () => {
  it('lists no checkpoint before any run is done', async () => {
    expect(await call('checkpoints.list', {})).toEqual([]);
  });

  it('refuses an export whose config JSON would replace a file beside it (a package.json, say)', async () => {
    const project = path.join(dataDir, 'project');
    mkdirSync(project);
    writeFileSync(path.join(project, 'package.json'), '{"name": "mine"}\n');
    const file = path.join(project, 'package.safetensors');
    expect(await failure('exports.write', { checkpoint: classifier.path, file })).toEqual({
      code: 'invalid-input',
      message: expect.stringContaining(`${path.join(project, 'package.json')} exists`),
    });
    expect(readFileSync(path.join(project, 'package.json'), 'utf8')).toBe('{"name": "mine"}\n');
    expect(readdirSync(project)).toEqual(['package.json']);
  });

  it('exports with timm names, refuses to overwrite unasked, and imports back the same weights', async () => {
    const suggestion = await call('exports.suggest', { checkpoint: classifier.path });
    expect(suggestion.file.startsWith(path.join(dataDir, 'exports') + path.sep)).toBe(true);
    expect(suggestion.file).toMatch(/-timm\.safetensors$/);

    const file = path.join(dataDir, 'out', 'classifier.safetensors');
    const outcome = await call('exports.write', { checkpoint: classifier.path, file });
    expect(outcome).toMatchObject({ file, kind: 'finetune', naming: 'timm', numClasses: 4, withDecoder: false });
    expect(outcome.configFile).toBe(path.join(dataDir, 'out', 'classifier.json'));
    expect(outcome.pytorch).toContain('model.load_state_dict(state)');
    expect(existsSync(outcome.configFile)).toBe(true);

    expect(await failure('exports.write', { checkpoint: classifier.path, file })).toMatchObject({
      code: 'invalid-input',
      message: expect.stringContaining('exists'),
    });
    await call('exports.write', { checkpoint: classifier.path, file, overwrite: true });
    expect(
      (await failure('exports.write', { checkpoint: classifier.path, file: 'relative.safetensors' })).message,
    ).toMatch(/absolute path/);
    expect(await failure('exports.write', { checkpoint: path.join(dataDir, 'nothing'), file })).toMatchObject({
      code: 'not-found',
    });

    const imported = await call('exports.import', { file });
    expect(imported.checkpoint).toBe(path.join(dataDir, 'imports', 'classifier', 'imported'));
    expect(imported).toMatchObject({ kind: 'finetune', naming: 'timm', numClasses: 4 });
    const [original, back] = await Promise.all([
      readSafetensors(path.join(classifier.path, 'model.safetensors')),
      readSafetensors(path.join(imported.checkpoint, 'model.safetensors')),
    ]);
    expect([...back.tensors.keys()].sort()).toEqual([...original.tensors.keys()].sort());
    for (const [name, tensor] of original.tensors) {
      const other = back.tensors.get(name);
      expect(other?.shape, name).toEqual(tensor.shape);
      expect(Buffer.from(other?.data.buffer ?? new ArrayBuffer(0)).equals(Buffer.from(tensor.data.buffer)), name).toBe(
        true,
      );
    }
    // A second import of the same file gets its own folder.
    expect((await call('exports.import', { file })).checkpoint).toBe(
      path.join(dataDir, 'imports', 'classifier-2', 'imported'),
    );

    const listed = await call('checkpoints.list', { kind: 'finetune' });
    expect(listed.map((entry) => [entry.origin, entry.name])).toEqual(
      expect.arrayContaining([
        ['import', 'classifier'],
        ['import', 'classifier-2'],
      ]),
    );
    expect(await call('checkpoints.list', { kind: 'pretrain' })).toEqual([]);
  });
});

describe('checkpoints and exports: a ConvNeXt (the PyTorch engine writes it)', () => {
  it("exports with timm's names and ConvNeXt's snippet, refuses native names and an unasked overwrite", async () => {
    const tuned = path.join(dataDir, 'convnext');
    writeFileSync(path.join(dataDir, 'convnext.input.json'), JSON.stringify({ heldOut: { size: 0 } }));
    const run = runMimir(
      [
        'finetune',
        '--engine',
        'torch',
        '--scratch',
        '--model',
        'convnext-micro',
        '--method',
        'natural',
        '--image-size',
        '32',
        '--dataset-size',
        '8',
        '--batch',
        '8',
        '--epochs',
        '1',
        '--config',
        path.join(dataDir, 'convnext.input.json'),
        '--out',
        tuned,
      ],
      { OMP_NUM_THREADS: '1' },
    );
    expect(run.status, run.stderr).toBe(0);

    const file = path.join(dataDir, 'out', 'convnext.safetensors');
    const outcome = await call('exports.write', { checkpoint: tuned, file });
    expect(outcome).toMatchObject({
      file,
      configFile: path.join(dataDir, 'out', 'convnext.json'),
      kind: 'finetune',
      naming: 'timm',
      numClasses: 10,
      withDecoder: false,
      architecture: 'convnext.ConvNeXt',
      modelArgs: { num_classes: 10, dims: [16, 32, 64, 128] },
    });
    expect(outcome.tensors).toBe((await readSafetensorsHeader(file)).entries.size);
    expect(outcome.pytorch).toContain('from timm.models.convnext import ConvNeXt');
    expect(outcome.pytorch).toContain('model = ConvNeXt(**config["model_args"])');
    const written = readFileSync(file);

    expect(await failure('exports.write', { checkpoint: tuned, file })).toMatchObject({
      code: 'invalid-input',
      message: expect.stringContaining(`${file} exists`),
    });
    expect(readFileSync(file)).toEqual(written);
    expect(
      await failure('exports.write', {
        checkpoint: tuned,
        file: path.join(dataDir, 'out', 'n.safetensors'),
        naming: 'native',
      }),
    ).toMatchObject({ code: 'invalid-input', message: expect.stringMatching(/timm's names only: choose timm names/) });
    expect((await failure('exports.import', { file })).message).toMatch(/ConvNeXt or Swin export .* loads into timm/);
  }, 300_000);
});
