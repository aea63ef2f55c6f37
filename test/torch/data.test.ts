import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchIterator, BuiltinDataset } from '../../src/engine/data';
import { openCifar10 } from '../../src/engine/data/cifar10';
import type { Dataset } from '../../src/engine/data/dataset';
import { openImageFolder } from '../../src/engine/data/image-folder';
import { datasetFraction } from '../../src/engine/data/subset';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { Rng } from '../../src/engine/rng';
import { AugmentationConfig, FolderSource } from '../../src/shared/dataset-config';
import { findPythonWithTorch, runPython, type PythonWithTorch } from '../engine/io/python-torch';
import { cifarArchive } from '../engine/data/helpers/cifar';
import { events, runMimir } from '../helpers/cli';
import { PYTHON_DIR } from './golden';

/**
 * The PyTorch engine's data (python/mimir_torch/data) gives the tfjs engine's examples for the same
 * config: a trainFraction share (the same indices, hence the same batches), CIFAR-10 read straight from
 * its .tar.gz, and a class-per-folder image tree (the same classes, files, order, labels and splits; the
 * same pixels where no resize is needed).
 */

interface TorchMeta {
  length: number;
  classNames?: string[];
  files?: string[];
}

async function all(dataset: Dataset): Promise<{ images: Float32Array; labels: number[] }> {
  const { images, labels } = await dataset.get(Array.from({ length: dataset.length }, (_, i) => i));
  return { images, labels: Array.from(labels) };
}

describe('data on the PyTorch engine: the same examples as the tfjs engine', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-torch-data-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  it('trainFraction: the same share of the training set, so the same batches (indices, labels, pixels)', async () => {
    const source = { kind: 'builtin', split: 'train', size: 40, seed: 3, classes: 10, imageSize: 16 } as const;
    const augmentation = AugmentationConfig.parse({ kind: 'pad-crop' });
    const share = { fraction: 0.35, seed: 9 };
    const file = path.join(dir, 'fraction.safetensors');
    const script = `
import json, torch
from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.data.subset import dataset_fraction
from mimir_torch.data.batches import BatchIterator
from mimir_torch.safetensors_io import write_safetensors
d = dataset_fraction(BuiltinDataset("train", 40, 3, 10, 16), ${JSON.stringify(share)})
it = BatchIterator(d, 4, 42, json.loads(${JSON.stringify(JSON.stringify(augmentation))}))
out = {"shared": torch.tensor(d.indices, dtype=torch.int32)}
for b in range(5):
    x, y, idx = it.next()
    out[f"images.{b}"] = torch.from_numpy(x)
    out[f"labels.{b}"] = torch.from_numpy(y).to(torch.int32)
    out[f"indices.{b}"] = torch.tensor(idx, dtype=torch.int32)
write_safetensors(${JSON.stringify(file)}, out)
print(json.dumps({"length": len(d)}))
`;
    const meta = runPython<{ length: number }>(python, ['-c', script], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR },
    });
    const tensors = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
    const subset = datasetFraction(new BuiltinDataset(source), share);
    // round(0.35 x 40) = 14 distinct images (Floyd's draw with seed 9).
    expect(subset.length).toBe(14);
    expect(meta.length).toBe(14);
    const iterator = new BatchIterator(subset, { batchSize: 4, seed: 42, augmentation, prefetch: 0 });
    try {
      for (let b = 0; b < 5; b++) {
        const batch = await iterator.nextArrays();
        expect(Array.from(tensors.get(`indices.${b}`)?.data ?? []), `batch ${b}`).toEqual(Array.from(batch.indices));
        expect(Array.from(tensors.get(`labels.${b}`)?.data ?? []), `batch ${b}`).toEqual(Array.from(batch.labels));
        const theirs = tensors.get(`images.${b}`)?.data ?? [];
        let worst = 0;
        batch.images.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (theirs[i] ?? NaN)))));
        // Pad-crop and flips move float32 pixels without arithmetic: equal (batches.test.ts: within 1 ulp).
        expect(worst, `batch ${b}`).toBeLessThanOrEqual(1e-7);
      }
    } finally {
      iterator.close();
    }
    // The share's images are the whole set's images at the drawn indices.
    const whole = await new BuiltinDataset(source).get(Array.from(tensors.get('shared')?.data ?? []));
    const own = await subset.get(Array.from({ length: 14 }, (_, i) => i));
    expect(Array.from(own.labels)).toEqual(Array.from(whole.labels));
  });

  it('CIFAR-10 from cifar-10-binary.tar.gz (the archive itself, or the folder holding it) equals the tfjs reading', async () => {
    const root = path.join(dir, 'cifar');
    await mkdir(root, { recursive: true });
    const archive = path.join(root, 'cifar-10-binary.tar.gz');
    await writeFile(archive, cifarArchive(3));
    for (const [where, split] of [
      [archive, 'train'],
      [root, 'test'],
    ] as const) {
      const ours = await all(await openCifar10({ kind: 'cifar10', split, root: where }, { recordsPerFile: 3 }));
      const file = path.join(dir, `cifar-${split}.safetensors`);
      const theirs = torchSide(
        python,
        `from mimir_torch.data.cifar10 import Cifar10Dataset\nd = Cifar10Dataset(${JSON.stringify(where)}, "${split}")`,
        file,
      );
      const read = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
      expect(theirs.length, split).toBe(split === 'train' ? 15 : 3);
      expect(Array.from(read.get('labels')?.data ?? []), split).toEqual(ours.labels);
      expect(Array.from(read.get('images')?.data ?? []), split).toEqual(Array.from(ours.images));
    }
  });

  it('an image folder: the same classes, files, order, labels and test split; the same pixels (resized ones within 3/255)', async () => {
    const root = path.join(dir, 'folder');
    const rng = new Rng(17);
    const image = async (file: string, width: number, height: number, channels: 1 | 3 | 4, format: 'png' | 'jpeg') => {
      await mkdir(path.dirname(file), { recursive: true });
      const data = Buffer.from(
        Array.from({ length: width * height * channels }, () => Math.floor(rng.uniform() * 256)),
      );
      const img = sharp(data, { raw: { width, height, channels } });
      await (format === 'png' ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
    };
    // Classes created out of order; nested folders; PNG and JPEG (.JPG too); grey and RGBA; one image
    // needing a resize and crop (24 x 20).
    for (const [k, name] of ['zebra', 'ant', 'moth'].entries()) {
      for (let i = 0; i < 7; i++) {
        const nested = i % 3 === 0 ? 'more/' : '';
        await image(path.join(root, name, `${nested}img-${i}.png`), 16, 16, i === 1 ? 1 : i === 2 ? 4 : 3, 'png');
      }
      await image(path.join(root, name, `photo-${k}.JPG`), 16, 16, 3, 'jpeg');
    }
    // A smooth image (a photograph's scale of detail): libvips' and Pillow's Lanczos filters are not the
    // same arithmetic, so resized pixels agree only within a tolerance (on random noise they differ wildly).
    const wide = Buffer.alloc(24 * 20 * 3);
    for (let y = 0; y < 20; y++)
      for (let x = 0; x < 24; x++)
        wide.set([x * 10, y * 12, 128 + Math.round(60 * Math.sin((x + y) / 6))], (y * 24 + x) * 3);
    await sharp(wide, { raw: { width: 24, height: 20, channels: 3 } })
      .png()
      .toFile(path.join(root, 'ant', 'wide.png'));
    await writeFile(path.join(root, 'ant', 'notes.txt'), 'not an image');

    for (const split of ['train', 'test'] as const) {
      const source = FolderSource.parse({ kind: 'folder', split, root, imageSize: 16, testFraction: 0.3 });
      const dataset = await openImageFolder(source);
      const ours = await all(dataset);
      const file = path.join(dir, `folder-${split}.safetensors`);
      const theirs = torchSide(
        python,
        `from mimir_torch.data.image_folder import ImageFolderDataset\nd = ImageFolderDataset(json.loads(${JSON.stringify(JSON.stringify(source))}))`,
        file,
      );
      const read = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
      expect(theirs.classNames).toEqual(['ant', 'moth', 'zebra']);
      expect(theirs.classNames).toEqual([...dataset.classNames]);
      const files = Array.from({ length: dataset.length }, (_, i) => dataset.fileOf(i));
      expect(theirs.files, split).toEqual(files);
      expect(Array.from(read.get('labels')?.data ?? []), split).toEqual(ours.labels);
      const pixels = 16 * 16 * 3;
      const images = read.get('images')?.data ?? [];
      for (let i = 0; i < dataset.length; i++) {
        let worst = 0;
        for (let p = i * pixels; p < (i + 1) * pixels; p++)
          worst = Math.max(worst, Math.abs((images[p] ?? NaN) - (ours.images[p] ?? NaN)));
        const resized = files[i]?.endsWith('wide.png');
        if (resized) console.log(`[data] resized image: worst pixel difference ${(worst * 255).toFixed(2)}/255`);
        expect(worst, files[i]).toBeLessThanOrEqual(resized ? 3 / 255 : 0);
      }
    }
  });

  it('mimir finetune --engine torch trains on an image folder with trainFraction: the same steps and classes as on tfjs', async () => {
    const root = path.join(dir, 'cli-folder');
    for (const [k, name] of ['cat', 'bird', 'dog'].entries()) {
      for (let i = 0; i < 8; i++) {
        const file = path.join(root, name, `${i}.png`);
        mkdirSync(path.dirname(file), { recursive: true });
        const data = Buffer.alloc(16 * 16 * 3);
        for (let p = 0; p < 256; p++)
          data.set([((p % 16) * 16 + k * 80) % 256, (Math.floor(p / 16) * 16 + i * 30) % 256, 90], p * 3);
        await sharp(data, { raw: { width: 16, height: 16, channels: 3 } })
          .png()
          .toFile(file);
      }
    }
    const settings = path.join(dir, 'cli-folder.json');
    writeFileSync(settings, JSON.stringify({ trainFraction: { fraction: 0.5, seed: 4 }, heldOut: { size: 0 } }));
    const run = (engine: 'tfjs' | 'torch') => {
      const out = path.join(dir, `cli-${engine}`);
      const result = runMimir(
        [
          'finetune',
          ...(engine === 'torch' ? ['--engine', 'torch'] : []),
          '--scratch',
          '--model',
          'micro',
          '--method',
          'natural',
          '--dataset',
          root,
          '--image-size',
          '16',
          '--batch',
          '4',
          '--epochs',
          '1',
          '--config',
          settings,
          '--out',
          out,
          '--json',
        ],
        { OMP_NUM_THREADS: '1' },
      );
      expect(result.status, result.stderr).toBe(0);
      const list = events(result.stdout);
      const manifest = JSON.parse(
        readFileSync(path.join(out, 'checkpoints', 'epoch-0001', 'checkpoint.json'), 'utf8'),
      ) as {
        runConfig: { classNames: string[]; trainFraction: unknown };
      };
      return { started: list[0], done: list.at(-1), record: manifest.runConfig };
    };
    const [tfjs, torch] = [run('tfjs'), run('torch')];
    expect(torch.done).toMatchObject({ type: 'done', epoch: 1 });
    // The share of the train split (the folder's hash split holds out ~10%) gives the same number of batches.
    expect(torch.started?.type === 'started' && torch.started.totalSteps).toBe(
      tfjs.started?.type === 'started' && tfjs.started.totalSteps,
    );
    expect(torch.record.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(torch.record.classNames).toEqual(tfjs.record.classNames);
    expect(torch.record.trainFraction).toEqual({ fraction: 0.5, seed: 4 });
  }, 600_000);

  it('mimir pretrain --engine torch with trainFraction 0.5 takes the tfjs engine steps on the same share (losses 1e-5)', () => {
    const settings = path.join(dir, 'pretrain-share.json');
    writeFileSync(settings, JSON.stringify({ trainFraction: { fraction: 0.5, seed: 3 }, logEvery: 1 }));
    const losses = (engine: 'tfjs' | 'torch'): number[] => {
      const result = runMimir(
        [
          'pretrain',
          ...(engine === 'torch' ? ['--engine', 'torch'] : []),
          '--model',
          'micro',
          '--mode',
          'mae',
          '--image-size',
          '16',
          '--dataset-size',
          '32',
          '--batch',
          '8',
          '--epochs',
          '1',
          '--config',
          settings,
          '--out',
          path.join(dir, `pretrain-share-${engine}`),
          '--json',
        ],
        { OMP_NUM_THREADS: '1' },
      );
      expect(result.status, result.stderr).toBe(0);
      return events(result.stdout).flatMap((e) =>
        e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : [],
      );
    };
    const [tfjs, torch] = [losses('tfjs'), losses('torch')];
    // 16 of the 32 images: 2 steps of 8.
    expect(torch).toHaveLength(2);
    expect(tfjs).toHaveLength(2);
    torch.forEach((loss, i) => expect(Math.abs(loss - (tfjs[i] ?? NaN)) / loss, `step ${i + 1}`).toBeLessThan(1e-5));
  }, 600_000);
});

/** Python binds `d` in `setup`; all its examples go to `file`; returns its length, classes and files. */
function torchSide(python: PythonWithTorch, setup: string, file: string): TorchMeta {
  const script = `
import json, torch
${setup}
x, y = d.batch(list(range(len(d))))
from mimir_torch.safetensors_io import write_safetensors
write_safetensors(${JSON.stringify(file)}, {"images": torch.from_numpy(x), "labels": torch.from_numpy(y).to(torch.int32)})
meta = {"length": len(d)}
if hasattr(d, "class_names"):
    meta["classNames"] = d.class_names
    meta["files"] = [f for f, _ in d.records]
print(json.dumps(meta))
`;
  return runPython<TorchMeta>(python, ['-c', script], {
    env: { ...process.env, PYTHONPATH: PYTHON_DIR },
    timeoutMs: 300_000,
  });
}
