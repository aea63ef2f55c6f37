import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Cifar10Source, DatasetDescription } from '@shared/dataset-config';
import { CHANNELS, DatasetError, checkIndex, type Dataset, type ExampleBatch } from './dataset';
import { readTarFiles } from './tar-reader';
import { errorMessage } from '@shared/unknown-value';

export const CIFAR10_ARCHIVE = 'cifar-10-binary.tar.gz';
export const CIFAR10_FOLDER = 'cifar-10-batches-bin';
export const CIFAR10_META = 'batches.meta.txt';
export const CIFAR10_FILES = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
} as const;
export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
] as const;
export const CIFAR10_IMAGE_BYTES = 32 * 32 * 3;
/** One record: a label byte, then the image as 1024 red, 1024 green and 1024 blue bytes (rows top to bottom). */
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;
export const CIFAR10_RECORDS_PER_FILE = 10_000;

export interface Cifar10Options {
  /** Records per batch file; the official files hold 10,000. Tests use small generated files. */
  recordsPerFile?: number;
}

/** Where the batch files are: a folder, or an archive to stream them from. */
type Location = { kind: 'folder'; dir: string } | { kind: 'archive'; file: string };

const fmt = (n: number) => n.toLocaleString('en-US');

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch {
    return null;
  }
}

async function locate(root: string, split: 'train' | 'test'): Promise<Location> {
  const info = await statOrNull(root);
  const expected =
    `expected the CIFAR-10 binary version: ${CIFAR10_FILES.train.join(', ')} and ${CIFAR10_FILES.test[0]} ` +
    `in ${root} or ${path.join(root, CIFAR10_FOLDER)}, or the archive ${CIFAR10_ARCHIVE} there, or the path of that archive`;
  if (!info) throw new DatasetError('missing', `CIFAR-10 not found: ${root} does not exist (${expected}).`, root);
  if (info.isFile()) {
    if (/\.(tar\.gz|tgz|tar)$/i.test(root)) return { kind: 'archive', file: root };
    throw new DatasetError('invalid', `CIFAR-10: ${root} is a file but not a .tar.gz archive (${expected}).`, root);
  }
  const first = CIFAR10_FILES[split][0];
  for (const dir of [root, path.join(root, CIFAR10_FOLDER)]) {
    if (await statOrNull(path.join(dir, first))) return { kind: 'folder', dir };
  }
  const archive = path.join(root, CIFAR10_ARCHIVE);
  if (await statOrNull(archive)) return { kind: 'archive', file: archive };
  throw new DatasetError('missing', `CIFAR-10 not found in ${root}: no ${first} (${expected}).`, root);
}

function parseMeta(text: string): string[] | null {
  const names = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return names.length === 10 ? names : null;
}

/** CIFAR-10 from the official binary batches, held in memory as bytes (150 MB for the train split). */
export class Cifar10Dataset implements Dataset {
  readonly numClasses = 10;
  readonly imageSize = 32;
  readonly length: number;

  constructor(
    private readonly pixels: Uint8Array,
    private readonly labels: Uint8Array,
    readonly classNames: readonly string[],
    readonly description: DatasetDescription,
  ) {
    this.length = labels.length;
  }

  labelOf(index: number): number {
    return this.labels[index] as number;
  }

  async get(indices: ArrayLike<number>): Promise<ExampleBatch> {
    const plane = 32 * 32;
    const images = new Float32Array(indices.length * CIFAR10_IMAGE_BYTES);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i] as number;
      checkIndex(this, index);
      labels[i] = this.labels[index] as number;
      const src = index * CIFAR10_IMAGE_BYTES;
      const dst = i * CIFAR10_IMAGE_BYTES;
      for (let p = 0; p < plane; p++) {
        const o = dst + p * CHANNELS;
        images[o] = (this.pixels[src + p] as number) / 255;
        images[o + 1] = (this.pixels[src + plane + p] as number) / 255;
        images[o + 2] = (this.pixels[src + 2 * plane + p] as number) / 255;
      }
    }
    return { images, labels };
  }
}

/** Opens the train or test split of CIFAR-10 from an extracted folder or cifar-10-binary.tar.gz. */
export async function openCifar10(source: Cifar10Source, options: Cifar10Options = {}): Promise<Cifar10Dataset> {
  const recordsPerFile = options.recordsPerFile ?? CIFAR10_RECORDS_PER_FILE;
  const expectedBytes = recordsPerFile * CIFAR10_RECORD_BYTES;
  const names: readonly string[] = CIFAR10_FILES[source.split];
  const location = await locate(source.root, source.split);

  const contents = new Map<string, Buffer>();
  let meta: Buffer | null = null;
  let where: (name: string) => string;
  if (location.kind === 'folder') {
    where = (name) => path.join(location.dir, name);
    for (const name of names) {
      const file = where(name);
      const info = await statOrNull(file);
      if (!info) {
        throw new DatasetError(
          'missing',
          `CIFAR-10: ${name} is missing from ${location.dir} (the ${source.split} split needs ${names.join(', ')}).`,
          file,
        );
      }
      if (info.size !== expectedBytes) throw sizeError(file, info.size, expectedBytes, recordsPerFile);
      try {
        contents.set(name, await readFile(file));
      } catch (error) {
        throw new DatasetError('corrupt', `CIFAR-10: cannot read ${file}: ${errorMessage(error)}`, file, {
          cause: error,
        });
      }
    }
    meta = await readFile(where(CIFAR10_META)).catch(() => null);
  } else {
    where = (name) => `${location.file}:${name}`;
    const wanted = new Set<string>([...names, CIFAR10_META]);
    const files = await readTarFiles(location.file, (entry) => wanted.has(path.posix.basename(entry.name)));
    for (const [name, data] of files) {
      const base = path.posix.basename(name);
      if (base === CIFAR10_META) meta = data;
      else contents.set(base, data);
    }
    const missing = names.filter((name) => !contents.has(name));
    if (missing.length > 0) {
      throw new DatasetError(
        'corrupt',
        `CIFAR-10: the archive ${location.file} has no ${missing.join(', ')} (expected the official ${CIFAR10_ARCHIVE}).`,
        location.file,
      );
    }
    for (const name of names) {
      const size = contents.get(name)?.length ?? 0;
      if (size !== expectedBytes) throw sizeError(where(name), size, expectedBytes, recordsPerFile);
    }
  }

  const count = names.length * recordsPerFile;
  const pixels = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  names.forEach((name, fileIndex) => {
    const data = contents.get(name);
    if (!data) throw new Error(`unreachable: ${name} not loaded`);
    for (let r = 0; r < recordsPerFile; r++) {
      const offset = r * CIFAR10_RECORD_BYTES;
      const label = data[offset] as number;
      if (label > 9) {
        throw new DatasetError(
          'corrupt',
          `CIFAR-10: record ${r} of ${where(name)} (byte ${offset}) has label ${label}; labels are 0-9, so this is not a CIFAR-10 batch file or it is corrupt.`,
          where(name),
        );
      }
      const index = fileIndex * recordsPerFile + r;
      labels[index] = label;
      pixels.set(data.subarray(offset + 1, offset + CIFAR10_RECORD_BYTES), index * CIFAR10_IMAGE_BYTES);
    }
  });

  const classNames = (meta && parseMeta(meta.toString('utf8'))) ?? [...CIFAR10_CLASSES];
  const origin = location.kind === 'folder' ? location.dir : location.file;
  return new Cifar10Dataset(pixels, labels, classNames, {
    kind: 'cifar10',
    split: source.split,
    location: origin,
    summary: `CIFAR-10 ${source.split} set: ${fmt(count)} images of 32x32, 10 classes, from ${origin}.`,
  });
}

function sizeError(file: string, size: number, expected: number, records: number): DatasetError {
  const what = size < expected ? 'truncated' : 'too long';
  return new DatasetError(
    'corrupt',
    `CIFAR-10: ${file} is ${fmt(size)} bytes but a batch file is ${fmt(expected)} bytes (${fmt(records)} records of ${fmt(CIFAR10_RECORD_BYTES)}): the file is ${what} or not a CIFAR-10 binary batch.`,
    file,
  );
}
