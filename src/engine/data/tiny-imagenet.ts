import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TinyImageNetSource } from '@shared/dataset-config';
import { DatasetError } from './dataset';
import { listImages, splitDataset, type ImageFileDataset, type ImageRecord } from './image-folder';
import { errorMessage } from '@shared/unknown-value';
import { pathExists } from '../io/exists';

const LAYOUT =
  'expected the Tiny-ImageNet layout: wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt';

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DatasetError(
      missing ? 'missing' : 'corrupt',
      `Tiny-ImageNet: cannot read ${what} ${file}: ${errorMessage(error)} (${LAYOUT}).`,
      file,
      { cause: error },
    );
  }
}

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/**
 * Tiny-ImageNet (tiny-imagenet-200): 200 classes, 64x64 JPEGs. Classes are the wnids sorted (the
 * order torchvision's ImageFolder gives train/), named by the first synonym in words.txt. The 'test'
 * split is the labelled val/ set.
 */
export async function openTinyImageNet(source: TinyImageNetSource): Promise<ImageFileDataset> {
  const given = path.resolve(source.root);
  const candidates = [given, path.join(given, 'tiny-imagenet-200')];
  let root: string | null = null;
  for (const dir of candidates) if (await pathExists(path.join(dir, 'wnids.txt'))) root = root ?? dir;
  if (!root) {
    throw new DatasetError(
      'missing',
      `Tiny-ImageNet not found: no wnids.txt in ${candidates.join(' or ')} (${LAYOUT}).`,
      given,
    );
  }

  const wnids = lines(await readText(path.join(root, 'wnids.txt'), 'the class list')).sort();
  const names = new Map<string, string>();
  const wordsFile = path.join(root, 'words.txt');
  if (await pathExists(wordsFile)) {
    for (const line of lines(await readText(wordsFile, 'the class names'))) {
      const [wnid, words] = line.split('\t');
      if (wnid && words) names.set(wnid, (words.split(',')[0] as string).trim());
    }
  }
  const classNames = wnids.map((wnid) => names.get(wnid) ?? wnid);
  const labelOf = new Map(wnids.map((wnid, i) => [wnid, i]));

  const records: ImageRecord[] = [];
  let location: string;
  if (source.split === 'train') {
    location = path.join(root, 'train');
    for (const [label, wnid] of wnids.entries()) {
      const dir = path.join(location, wnid, 'images');
      if (!(await pathExists(dir))) {
        throw new DatasetError(
          'missing',
          `Tiny-ImageNet: ${dir} is missing (class ${wnid} of wnids.txt; ${LAYOUT}).`,
          dir,
        );
      }
      for (const file of await listImages(dir)) records.push({ file, label });
    }
  } else {
    location = path.join(root, 'val');
    const annotations = path.join(location, 'val_annotations.txt');
    const text = await readText(annotations, 'the validation labels');
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '') return;
      const [file, wnid] = line.split('\t');
      const label = wnid === undefined ? undefined : labelOf.get(wnid);
      if (!file || label === undefined) {
        throw new DatasetError(
          'corrupt',
          `Tiny-ImageNet: line ${i + 1} of ${annotations} names ${wnid ? `class ${wnid}, which is not in wnids.txt` : 'no class'}.`,
          annotations,
        );
      }
      records.push({ file: path.join(location, 'images', file), label });
    });
  }
  const summary = `Tiny-ImageNet ${source.split === 'train' ? 'train' : 'val (test)'} set: ${records.length.toLocaleString('en-US')} images in ${wnids.length} classes at ${source.imageSize}x${source.imageSize}, from ${location}.`;
  return splitDataset(
    records,
    classNames,
    source,
    { kind: 'tiny-imagenet', split: source.split, location, summary },
    `Tiny-ImageNet: no images for the ${source.split} split under ${location}.`,
  );
}
