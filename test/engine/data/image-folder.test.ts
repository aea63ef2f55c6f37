import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../../../src/engine/data/dataset';
import { openImageFolder, type ImageFileDataset } from '../../../src/engine/data/image-folder';
import { openDataset } from '../../../src/engine/data/open-dataset';
import { openTinyImageNet } from '../../../src/engine/data/tiny-imagenet';
import { FolderSource, TinyImageNetSource } from '../../../src/shared/dataset-config';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-images-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Rgb = [number, number, number];
const COLOURS: Record<string, Rgb> = { bird: [200, 40, 30], cat: [20, 180, 60], dog: [30, 60, 220] };

/** A size x size image: the class colour, with pixel (0, 0) set to `marker` grey so files differ. */
function pixels(size: number, colour: Rgb, marker: number): Buffer {
  const data = Buffer.alloc(size * size * 3);
  for (let p = 0; p < size * size; p++) data.set(colour, p * 3);
  data.set([marker, marker, marker], 0);
  return data;
}

async function writeImage(file: string, data: Buffer, size: number, format: 'png' | 'jpeg', channels: 1 | 3 | 4 = 3) {
  await mkdir(path.dirname(file), { recursive: true });
  const image = sharp(data, { raw: { width: size, height: size, channels } });
  await (format === 'png' ? image.png() : image.jpeg({ quality: 95 })).toFile(file);
}

async function expectDatasetError(promise: Promise<unknown>, code: string, ...fragments: string[]) {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatasetError);
  expect((error as DatasetError).code).toBe(code);
  for (const fragment of fragments) expect((error as DatasetError).message).toContain(fragment);
}

/** Mean colour of image i (skipping the marker pixel), in 0-255. */
function meanColour(images: Float32Array, i: number, size: number): Rgb {
  const sum = [0, 0, 0];
  for (let p = 1; p < size * size; p++)
    for (let c = 0; c < 3; c++) sum[c] += (images[(i * size * size + p) * 3 + c] as number) * 255;
  return sum.map((s) => s / (size * size - 1)) as Rgb;
}

describe('class-per-folder images (decoded with sharp)', () => {
  let root: string;
  beforeAll(async () => {
    root = path.join(dir, 'plain');
    // 12 images per class, PNG for bird, JPEG (.jpg / .JPEG) for cat and dog, some in a nested folder.
    for (const [name, colour] of Object.entries(COLOURS)) {
      for (let k = 0; k < 12; k++) {
        const format = name === 'bird' ? 'png' : 'jpeg';
        const ext = name === 'bird' ? 'png' : k % 2 ? 'jpg' : 'JPEG';
        const sub = k >= 10 ? 'more/' : '';
        await writeImage(path.join(root, name, `${sub}${name}_${k}.${ext}`), pixels(16, colour, k * 20), 16, format);
      }
    }
    await writeFile(path.join(root, 'cat', 'notes.txt'), 'not an image');
    await writeFile(path.join(root, 'cat', '.hidden.jpg'), 'editor junk');
    // A named pipe with an image's name: reading it would wait forever for a writer.
    expect(spawnSync('mkfifo', [path.join(root, 'dog', 'more', 'pipe.png')]).status).toBe(0);
  });

  it('indexes classes in sorted order, splits by a stable hash, and decodes to [0, 1] NHWC', async () => {
    const train = await openImageFolder(
      FolderSource.parse({ kind: 'folder', root, imageSize: 16, testFraction: 0.25 }),
    );
    const test = await openImageFolder(
      FolderSource.parse({ kind: 'folder', root, imageSize: 16, testFraction: 0.25, split: 'test' }),
    );
    expect(train.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(train.length + test.length).toBe(36);
    expect(test.length).toBeGreaterThan(2);
    expect(test.length).toBeLessThan(18);
    const files = (ds: ImageFileDataset) => Array.from({ length: ds.length }, (_, i) => ds.fileOf(i));
    const trainFiles = new Set(files(train));
    for (const file of files(test)) expect(trainFiles.has(file)).toBe(false);
    expect([...trainFiles, ...files(test)].some((f) => f.includes(`${path.sep}more${path.sep}`))).toBe(true);
    // The same split again (stable, not random).
    const again = await openImageFolder(
      FolderSource.parse({ kind: 'folder', root, imageSize: 16, testFraction: 0.25, split: 'test' }),
    );
    expect(files(again)).toEqual(files(test));

    const indices = Array.from({ length: train.length }, (_, i) => i);
    const { images, labels } = await train.get(indices);
    expect(images.length).toBe(train.length * 16 * 16 * 3);
    for (const i of indices) {
      const label = labels[i] as number;
      expect(label).toBe(train.labelOf(i));
      const expected = COLOURS[train.classNames[label] as string] as Rgb;
      const mean = meanColour(images, i, 16);
      const tolerance = label === 0 ? 0.01 : 4; // PNG is lossless; JPEG is close
      for (let c = 0; c < 3; c++) expect(Math.abs(mean[c] - expected[c])).toBeLessThan(tolerance);
    }
    // The PNG marker pixel survives exactly: decoding keeps pixel order.
    const birdIndex = indices.find((i) => train.labelOf(i) === 0) as number;
    const k = Number(/bird_(\d+)\.png$/.exec(train.fileOf(birdIndex))?.[1]);
    expect(images[birdIndex * 16 * 16 * 3]).toBeCloseTo((k * 20) / 255, 6);
    expect(images[birdIndex * 16 * 16 * 3 + 3]).toBeCloseTo(200 / 255, 6);
    expect(Math.min(...images)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...images)).toBeLessThanOrEqual(1);
  });

  it('resizes on demand (shorter side, centre crop) and turns grey and RGBA images into RGB', async () => {
    const odd = path.join(dir, 'odd');
    // 40 x 20: red, green, blue thirds from left to right.
    const wide = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++)
      for (let x = 0; x < 40; x++)
        wide.set(x < 13 ? [255, 0, 0] : x < 27 ? [0, 255, 0] : [0, 0, 255], (y * 40 + x) * 3);
    await mkdir(path.join(odd, 'wide'), { recursive: true });
    await sharp(wide, { raw: { width: 40, height: 20, channels: 3 } })
      .png()
      .toFile(path.join(odd, 'wide', 'w.png'));
    await writeImage(path.join(odd, 'grey', 'g.png'), Buffer.alloc(24 * 24, 77), 24, 'png', 1);
    const rgba = Buffer.alloc(24 * 24 * 4);
    for (let p = 0; p < 24 * 24; p++) rgba.set([10, 120, 240, p % 2 ? 0 : 255], p * 4);
    await writeImage(path.join(odd, 'rgba', 'a.png'), rgba, 24, 'png', 4);

    const ds = await openImageFolder(FolderSource.parse({ kind: 'folder', root: odd, imageSize: 8, testFraction: 0 }));
    expect(ds.classNames).toEqual(['grey', 'rgba', 'wide']);
    const { images } = await ds.get([0, 1, 2]);
    expect(images.length).toBe(3 * 8 * 8 * 3);
    const px = (i: number, y: number, x: number) =>
      Array.from(images.subarray(((i * 8 + y) * 8 + x) * 3, ((i * 8 + y) * 8 + x) * 3 + 3), (v) => Math.round(v * 255));
    expect(px(0, 4, 4)).toEqual([77, 77, 77]);
    // Alpha is dropped (sharp resizes premultiplied, so allow a rounding step).
    px(1, 4, 4).forEach((v, c) => expect(Math.abs(v - ([10, 120, 240][c] as number))).toBeLessThanOrEqual(2));
    // The crop keeps the middle: green at the centre, red on the left edge, blue on the right.
    const centre = px(2, 4, 4);
    expect(centre[1]).toBeGreaterThan(200);
    expect(centre[0]).toBeLessThan(40);
    expect(px(2, 4, 0)[0]).toBeGreaterThan(px(2, 4, 0)[2] as number);
    expect(px(2, 4, 7)[2]).toBeGreaterThan(px(2, 4, 7)[0] as number);
  });

  it('uses train/ and val/ folders as the splits when they exist', async () => {
    const split = path.join(dir, 'split');
    for (const [part, count] of [
      ['train', 3],
      ['val', 2],
    ] as const) {
      for (const name of ['cat', 'dog']) {
        for (let k = 0; k < count; k++)
          await writeImage(path.join(split, part, name, `${k}.png`), pixels(8, COLOURS[name] as Rgb, k), 8, 'png');
      }
    }
    const train = await openDataset({ kind: 'folder', root: split, imageSize: 8 });
    const test = await openDataset({ kind: 'folder', root: split, imageSize: 8, split: 'test' });
    expect([train.length, test.length]).toEqual([6, 4]);
    expect(test.classNames).toEqual(['cat', 'dog']);
    expect(test.description.location).toBe(path.join(split, 'val'));
    await writeImage(path.join(split, 'val', 'horse', '0.png'), pixels(8, [1, 2, 3], 0), 8, 'png');
    await expectDatasetError(
      openDataset({ kind: 'folder', root: split, imageSize: 8, split: 'test' }),
      'invalid',
      path.join(split, 'val', 'horse'),
      'not one of the classes',
    );
  });

  it('stops at a corrupt or truncated image with an error naming the file, or skips and counts it when asked', async () => {
    const bad = path.join(dir, 'bad');
    for (let k = 0; k < 3; k++) await writeImage(path.join(bad, 'a', `${k}.png`), pixels(8, [50, 60, 70], k), 8, 'png');
    await writeImage(path.join(bad, 'b', 'good.jpg'), pixels(8, [90, 90, 90], 0), 8, 'jpeg');
    const garbage = path.join(bad, 'a', '1.png');
    await writeFile(garbage, Buffer.from('definitely not a PNG'));
    const whole = await readFile(path.join(bad, 'b', 'good.jpg'));
    const truncated = path.join(bad, 'b', 'half.jpg');
    await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));

    const ds = await openImageFolder(FolderSource.parse({ kind: 'folder', root: bad, imageSize: 8, testFraction: 0 }));
    const indexOf = (file: string) => Array.from({ length: ds.length }, (_, i) => ds.fileOf(i)).indexOf(file);
    await expectDatasetError(ds.get([0, indexOf(garbage)]), 'unreadable-image', garbage);
    await expectDatasetError(ds.get([indexOf(truncated)]), 'unreadable-image', truncated);

    const skipping = await openImageFolder(
      FolderSource.parse({ kind: 'folder', root: bad, imageSize: 8, testFraction: 0, onBadImage: 'skip' }),
    );
    const all = Array.from({ length: skipping.length }, (_, i) => i);
    const { images, labels } = await skipping.get(all);
    expect(images.length).toBe(skipping.length * 8 * 8 * 3);
    expect([...skipping.badFiles].sort()).toEqual([garbage, truncated].sort());
    // A skipped file is replaced by the next readable image, with that image's own label.
    expect(labels[indexOf(garbage)]).toBe(0);
  });

  it('explains a missing folder and an empty class folder', async () => {
    const nowhere = path.join(dir, 'nowhere');
    await expectDatasetError(
      openImageFolder(FolderSource.parse({ kind: 'folder', root: nowhere, imageSize: 8 })),
      'missing',
      nowhere,
      'one sub-folder per class',
    );
    const hollow = path.join(dir, 'hollow');
    await writeImage(path.join(hollow, 'full', '0.png'), pixels(8, [1, 2, 3], 0), 8, 'png');
    await mkdir(path.join(hollow, 'empty'), { recursive: true });
    await expectDatasetError(
      openImageFolder(FolderSource.parse({ kind: 'folder', root: hollow, imageSize: 8 })),
      'invalid',
      path.join(hollow, 'empty'),
      'no .jpg/.jpeg/.png',
    );
  });
});

describe('Tiny-ImageNet layout', () => {
  const wnids = ['n02124075', 'n01443537', 'n09246464'];
  const words = [
    'n01443537\tgoldfish, Carassius auratus',
    'n02124075\tEgyptian cat',
    'n09246464\tcliff, drop, drop-off',
    'n00000001\tunused',
  ];
  const colourOf = (wnid: string): Rgb => [wnids.indexOf(wnid) * 100 + 20, 128, 255 - wnids.indexOf(wnid) * 100];
  let base: string;
  let root: string;
  const val: [string, string][] = [
    ['val_0.JPEG', 'n09246464'],
    ['val_1.JPEG', 'n01443537'],
    ['val_2.JPEG', 'n02124075'],
    ['val_3.JPEG', 'n01443537'],
  ];

  beforeAll(async () => {
    base = path.join(dir, 'tiny');
    root = path.join(base, 'tiny-imagenet-200');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'wnids.txt'), wnids.join('\n') + '\n');
    await writeFile(path.join(root, 'words.txt'), words.join('\n') + '\n');
    for (const wnid of wnids) {
      for (let k = 0; k < 4; k++)
        await writeImage(
          path.join(root, 'train', wnid, 'images', `${wnid}_${k}.JPEG`),
          pixels(64, colourOf(wnid), 0),
          64,
          'jpeg',
        );
      await writeFile(path.join(root, 'train', wnid, `${wnid}_boxes.txt`), '');
    }
    for (const [file, wnid] of val)
      await writeImage(path.join(root, 'val', 'images', file), pixels(64, colourOf(wnid), 0), 64, 'jpeg');
    await writeFile(
      path.join(root, 'val', 'val_annotations.txt'),
      val.map(([f, w]) => `${f}\t${w}\t0\t0\t63\t63`).join('\n') + '\n',
    );
  });

  it('reads train/<wnid>/images and the labelled val split, with sorted wnids named from words.txt', async () => {
    const train = await openTinyImageNet(TinyImageNetSource.parse({ kind: 'tiny-imagenet', root: base }));
    expect(train.classNames).toEqual(['goldfish', 'Egyptian cat', 'cliff']);
    expect(train.imageSize).toBe(64);
    expect(train.length).toBe(12);
    const { images, labels } = await train.get(Array.from({ length: 12 }, (_, i) => i));
    const sorted = [...wnids].sort();
    for (let i = 0; i < 12; i++) {
      const wnid = sorted[labels[i] as number] as string;
      expect(train.fileOf(i)).toContain(wnid);
      const mean = meanColour(images, i, 64);
      colourOf(wnid).forEach((v, c) => expect(Math.abs((mean[c] as number) - v)).toBeLessThan(4));
    }

    const test = await openDataset({ kind: 'tiny-imagenet', root, split: 'test', imageSize: 32 });
    expect(test.length).toBe(4);
    expect(test.imageSize).toBe(32);
    expect(Array.from({ length: 4 }, (_, i) => test.labelOf(i))).toEqual(val.map(([, w]) => sorted.indexOf(w)));
    const batch = await test.get([0, 1, 2, 3]);
    expect(batch.images.length).toBe(4 * 32 * 32 * 3);
    expect(test.description.summary).toContain('val (test)');
  });

  it('says what is missing: the layout, a class folder, a bad annotation line', async () => {
    await expectDatasetError(
      openTinyImageNet(TinyImageNetSource.parse({ kind: 'tiny-imagenet', root: dir })),
      'missing',
      'wnids.txt',
      'val_annotations.txt',
      dir,
    );
    const broken = path.join(dir, 'tiny-broken');
    await mkdir(path.join(broken, 'val'), { recursive: true });
    await writeFile(path.join(broken, 'wnids.txt'), 'n1\nn2\n');
    await expectDatasetError(
      openTinyImageNet(TinyImageNetSource.parse({ kind: 'tiny-imagenet', root: broken })),
      'missing',
      path.join(broken, 'train', 'n1', 'images'),
    );
    await writeFile(
      path.join(broken, 'val', 'val_annotations.txt'),
      'val_0.JPEG\tn1\t0\t0\t1\t1\nval_1.JPEG\tn7\t0\t0\t1\t1\n',
    );
    await expectDatasetError(
      openTinyImageNet(TinyImageNetSource.parse({ kind: 'tiny-imagenet', root: broken, split: 'test' })),
      'corrupt',
      'line 2',
      'n7',
      'val_annotations.txt',
    );
  });
});
