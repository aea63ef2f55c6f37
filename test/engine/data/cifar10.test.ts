import { mkdtemp, rm, truncate, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCifar10 } from '../../../src/engine/data/cifar10';
import { DatasetError } from '../../../src/engine/data/dataset';
import { readTarFiles } from '../../../src/engine/data/tar-reader';
import { Cifar10Source } from '../../../src/shared/dataset-config';
import { CLASS_NAMES, cifarArchive, makeBatchFile, recordByte, recordLabel, writeCifarFolder } from './helpers/cifar';
import { makeTar, makeTarGz } from './helpers/tar';

const RECORDS = 12;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-cifar-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const source = (root: string, split: 'train' | 'test' = 'train') =>
  Cifar10Source.parse({ kind: 'cifar10', root, split });

async function expectDatasetError(
  promise: Promise<unknown>,
  code: string,
  ...fragments: string[]
): Promise<DatasetError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatasetError);
  const e = error as DatasetError;
  expect(e.code).toBe(code);
  for (const fragment of fragments) expect(e.message).toContain(fragment);
  return e;
}

/** Checks every label and a spread of pixels against the generator: HWC, [0, 1], CHW source order. */
async function checkContents(root: string, split: 'train' | 'test') {
  const ds = await openCifar10(source(root, split), { recordsPerFile: RECORDS });
  const files = split === 'train' ? [0, 1, 2, 3, 4] : [5];
  expect(ds.length).toBe(files.length * RECORDS);
  expect(ds.classNames).toEqual(CLASS_NAMES);
  expect(ds.imageSize).toBe(32);
  const indices = Array.from({ length: ds.length }, (_, i) => i);
  const { images, labels } = await ds.get(indices);
  expect(images.length).toBe(ds.length * 32 * 32 * 3);
  for (const i of indices) {
    const file = files[Math.floor(i / RECORDS)] as number;
    const record = i % RECORDS;
    expect(labels[i]).toBe(recordLabel(file, record));
    expect(ds.labelOf(i)).toBe(recordLabel(file, record));
    for (const [y, x] of [
      [0, 0],
      [0, 31],
      [17, 5],
      [31, 31],
    ] as const) {
      for (let c = 0; c < 3; c++) {
        expect(images[((i * 32 + y) * 32 + x) * 3 + c]).toBeCloseTo(recordByte(file, record, c, y * 32 + x) / 255, 6);
      }
    }
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of images) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  expect(min).toBeGreaterThanOrEqual(0);
  expect(max).toBeLessThanOrEqual(1);
  return ds;
}

describe('CIFAR-10 reader (official binary format, small generated files)', () => {
  it('reads an extracted folder, given either the batches folder or its parent', async () => {
    const root = path.join(dir, 'extracted');
    const batches = await writeCifarFolder(root, RECORDS);
    const train = await checkContents(root, 'train');
    expect(train.description).toMatchObject({ kind: 'cifar10', split: 'train', location: batches });
    await checkContents(batches, 'test');
  });

  it('reads straight from cifar-10-binary.tar.gz, given the archive or the folder holding it', async () => {
    const root = path.join(dir, 'archive');
    await mkdir(root, { recursive: true });
    const archive = path.join(root, 'cifar-10-binary.tar.gz');
    await writeFile(archive, cifarArchive(RECORDS));
    const train = await checkContents(archive, 'train');
    expect(train.description.location).toBe(archive);
    await checkContents(root, 'test');
  });

  it('expects 10,000 records per file by default and says so for a short file', async () => {
    const root = path.join(dir, 'extracted-default');
    const batches = await writeCifarFolder(root, RECORDS);
    await expectDatasetError(
      openCifar10(source(root)),
      'corrupt',
      path.join(batches, 'data_batch_1.bin'),
      '36,876 bytes',
      '30,730,000 bytes',
      'truncated',
    );
  });

  it('stops with a message that names what is missing and where', async () => {
    const nowhere = path.join(dir, 'does-not-exist');
    await expectDatasetError(
      openCifar10(source(nowhere)),
      'missing',
      nowhere,
      'data_batch_1.bin',
      'cifar-10-binary.tar.gz',
    );
    const empty = path.join(dir, 'empty');
    await mkdir(empty);
    await expectDatasetError(openCifar10(source(empty)), 'missing', empty, 'data_batch_1.bin');
    const partial = path.join(dir, 'partial');
    const batches = await writeCifarFolder(partial, RECORDS);
    await rm(path.join(batches, 'data_batch_4.bin'));
    await expectDatasetError(
      openCifar10(source(partial), { recordsPerFile: RECORDS }),
      'missing',
      'data_batch_4.bin',
      batches,
    );
  });

  it('rejects a truncated batch file and a record with an impossible label', async () => {
    const root = path.join(dir, 'damaged');
    const batches = await writeCifarFolder(root, RECORDS);
    await truncate(path.join(batches, 'data_batch_3.bin'), RECORDS * 3073 - 100);
    await expectDatasetError(
      openCifar10(source(root), { recordsPerFile: RECORDS }),
      'corrupt',
      'data_batch_3.bin',
      'truncated',
    );
    const bad = makeBatchFile(5, RECORDS);
    bad[4 * 3073] = 200;
    await writeFile(path.join(batches, 'test_batch.bin'), bad);
    await expectDatasetError(
      openCifar10(source(root, 'test'), { recordsPerFile: RECORDS }),
      'corrupt',
      'record 4',
      'test_batch.bin',
      'label 200',
    );
  });

  it('rejects a truncated or non-gzip archive, and an archive without the batch files', async () => {
    const whole = cifarArchive(RECORDS);
    const cut = path.join(dir, 'cut.tar.gz');
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await expectDatasetError(openCifar10(source(cut), { recordsPerFile: RECORDS }), 'corrupt', cut);
    const junk = path.join(dir, 'junk.tar.gz');
    await writeFile(junk, Buffer.from('this is not a gzip file at all'));
    await expectDatasetError(openCifar10(source(junk), { recordsPerFile: RECORDS }), 'corrupt', junk);
    const other = path.join(dir, 'other.tar.gz');
    await writeFile(other, makeTarGz([{ name: 'x/readme.txt', data: Buffer.from('hi') }]));
    await expectDatasetError(
      openCifar10(source(other), { recordsPerFile: RECORDS }),
      'corrupt',
      other,
      'data_batch_1.bin',
    );
  });
});

describe('tar reader', () => {
  it('reads plain, GNU long-name and pax long-path entries, keeping only the wanted ones', async () => {
    const long = `${'deep/'.repeat(30)}file.bin`;
    const payload = Buffer.from(Array.from({ length: 1500 }, (_, i) => i % 251));
    for (const longNames of ['gnu', 'pax'] as const) {
      const file = path.join(dir, `long-${longNames}.tar`);
      await writeFile(
        file,
        makeTar(
          [
            { name: 'a.txt', data: Buffer.from('alpha') },
            { name: long, data: payload },
            { name: 'empty.txt', data: Buffer.alloc(0) },
            { name: 'skip.bin', data: Buffer.alloc(3000, 7) },
          ],
          { longNames },
        ),
      );
      const files = await readTarFiles(file, (entry) => entry.name !== 'skip.bin');
      expect([...files.keys()].sort()).toEqual(['a.txt', long, 'empty.txt'].sort());
      expect(files.get('a.txt')?.toString()).toBe('alpha');
      expect(files.get(long)?.equals(payload)).toBe(true);
      expect(files.get('empty.txt')?.length).toBe(0);
    }
  });
});
