import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DatasetDescription, FolderSource } from '@shared/dataset-config';
import { CHANNELS, DatasetError, checkIndex, type Dataset, type ExampleBatch } from './dataset';
import { hashString } from './hash';
import { decodeImageFile } from './image-decode';
import { errorMessage } from '@shared/unknown-value';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;
const SPLIT_FOLDERS = { train: ['train'], test: ['val', 'test', 'validation'] } as const;
/** Images decoded at once: enough to keep libuv's decoder threads busy, few enough to bound memory. */
const DECODE_CONCURRENCY = 8;

export function isImageFile(name: string): boolean {
  return !name.startsWith('.') && (IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());
}

export interface ImageRecord {
  file: string;
  label: number;
}

/**
 * Images listed by path and decoded on demand: only the index of files is in memory, so a folder
 * of any size streams. With `onBadImage: 'skip'` an unreadable file is counted in `badFiles` and the
 * next readable index stands in for it; by default it stops with an error naming the file.
 */
export class ImageFileDataset implements Dataset {
  readonly length: number;
  readonly numClasses: number;
  /** Files that could not be decoded and were skipped (only with onBadImage 'skip'). */
  readonly badFiles = new Set<string>();

  constructor(
    private readonly records: readonly ImageRecord[],
    readonly classNames: readonly string[],
    readonly imageSize: number,
    readonly description: DatasetDescription,
    private readonly onBadImage: 'stop' | 'skip' = 'stop',
  ) {
    this.length = records.length;
    this.numClasses = classNames.length;
  }

  labelOf(index: number): number {
    return (this.records[index] as ImageRecord).label;
  }

  fileOf(index: number): string {
    return (this.records[index] as ImageRecord).file;
  }

  async get(indices: ArrayLike<number>): Promise<ExampleBatch> {
    const pixels = this.imageSize * this.imageSize * CHANNELS;
    const images = new Float32Array(indices.length * pixels);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) checkIndex(this, indices[i] as number);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < indices.length; i = next++) {
        const { bytes, label } = await this.decode(indices[i] as number);
        labels[i] = label;
        const offset = i * pixels;
        for (let p = 0; p < pixels; p++) images[offset + p] = (bytes[p] as number) / 255;
      }
    };
    await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, indices.length) }, worker));
    return { images, labels };
  }

  private async decode(index: number): Promise<{ bytes: Uint8Array; label: number }> {
    for (let tries = 0; ; tries++) {
      const record = this.records[(index + tries) % this.length] as ImageRecord;
      if (this.onBadImage === 'skip' && this.badFiles.has(record.file)) continue;
      try {
        return { bytes: await decodeImageFile(record.file, this.imageSize), label: record.label };
      } catch (error) {
        if (this.onBadImage === 'stop' || tries >= 100) throw error;
        this.badFiles.add(record.file);
      }
    }
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function listDirectory(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(
      code === 'ENOENT' ? 'missing' : 'invalid',
      `Cannot list ${dir}: ${errorMessage(error)}`,
      dir,
      {
        cause: error,
      },
    );
  }
}

/**
 * Image files anywhere under `dir`, sorted, as absolute paths. Files and links only: a named pipe or a
 * device with an image's name would hold its decoder forever.
 */
export async function listImages(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (error) {
    throw new DatasetError('missing', `Cannot list ${dir}: ${errorMessage(error)}`, dir, { cause: error });
  }
  return entries
    .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && isImageFile(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
}

/** Sub-folders of `dir` (sorted, hidden ones left out): the classes of a class-per-folder tree. */
async function classFolders(dir: string): Promise<string[]> {
  const names = await listDirectory(dir);
  const folders: string[] = [];
  for (const name of names) if (!name.startsWith('.') && (await isDirectory(path.join(dir, name)))) folders.push(name);
  return folders;
}

async function indexClassTree(dir: string, classNames: readonly string[], knownOnly: boolean): Promise<ImageRecord[]> {
  const records: ImageRecord[] = [];
  for (const name of await classFolders(dir)) {
    const label = classNames.indexOf(name);
    if (label === -1) {
      if (knownOnly) {
        throw new DatasetError(
          'invalid',
          `${path.join(dir, name)} is not one of the classes of the train folder (${classNames.length} classes).`,
          path.join(dir, name),
        );
      }
      continue;
    }
    for (const file of await listImages(path.join(dir, name))) records.push({ file, label });
  }
  return records;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/**
 * A class-per-folder image tree: <root>/<class>/**.{jpg,jpeg,png}, or the same under <root>/train
 * and <root>/val (or test, validation). Without split folders, a stable hash of each file's path
 * puts `testFraction` of the images in the test split.
 */
export async function openImageFolder(source: FolderSource): Promise<ImageFileDataset> {
  const root = path.resolve(source.root);
  if (!(await isDirectory(root))) {
    throw new DatasetError(
      'missing',
      `Image folder ${root} does not exist or is not a folder (expected one sub-folder per class holding .jpg/.jpeg/.png images).`,
      root,
    );
  }
  const entries = await classFolders(root);
  const trainDir = entries.includes('train') ? path.join(root, 'train') : null;
  const testName = SPLIT_FOLDERS.test.find((name) => entries.includes(name));
  let records: ImageRecord[];
  let classNames: string[];
  let location: string;
  if (trainDir && testName) {
    classNames = await classFolders(trainDir);
    if (classNames.length === 0) throw new DatasetError('invalid', `${trainDir} has no class sub-folders.`, trainDir);
    location = source.split === 'train' ? trainDir : path.join(root, testName);
    records = await indexClassTree(location, classNames, true);
  } else {
    // Only a train/ folder: split it by hash like a plain class tree.
    const tree = trainDir ?? root;
    classNames = trainDir ? await classFolders(trainDir) : entries;
    if (classNames.length === 0) {
      throw new DatasetError(
        'invalid',
        `Image folder ${tree} has no sub-folders: expected one sub-folder per class holding .jpg/.jpeg/.png images.`,
        tree,
      );
    }
    const all = await indexClassTree(tree, classNames, false);
    const counts = new Array<number>(classNames.length).fill(0);
    for (const r of all) counts[r.label] = (counts[r.label] as number) + 1;
    const empty = classNames.filter((_, i) => counts[i] === 0);
    if (empty.length > 0) {
      const first = path.join(tree, empty[0] as string);
      throw new DatasetError(
        'invalid',
        `Class folder ${first} has no .jpg/.jpeg/.png images${empty.length > 1 ? ` (nor do ${empty.length - 1} other class folders)` : ''}.`,
        first,
      );
    }
    const inTest = (r: ImageRecord) =>
      hashString(path.relative(tree, r.file).split(path.sep).join('/')) / 4294967296 < source.testFraction;
    records = all.filter((r) => inTest(r) === (source.split === 'test'));
    location = tree;
  }
  const summary = `Image folder ${source.split} set: ${fmt(records.length)} images in ${classNames.length} classes, resized to ${source.imageSize}x${source.imageSize}, from ${location}.`;
  return splitDataset(
    records,
    classNames,
    source,
    { kind: 'folder', split: source.split, location, summary },
    `No .jpg/.jpeg/.png images for the ${source.split} split under ${location}.`,
  );
}

/**
 * An image-file dataset over one split's records; a split without any is an error naming its
 * location (`noImages` says what was looked for where).
 */
export function splitDataset(
  records: ImageRecord[],
  classNames: string[],
  source: { imageSize: number; onBadImage: 'stop' | 'skip' },
  description: DatasetDescription,
  noImages: string,
): ImageFileDataset {
  if (records.length === 0) throw new DatasetError('invalid', noImages, description.location);
  return new ImageFileDataset(records, classNames, source.imageSize, description, source.onBadImage);
}
