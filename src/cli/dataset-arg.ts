import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type { DatasetSourceInput } from '@shared/dataset-config';
import { positiveInt } from './output';

/** Where `--dataset cifar10` looks when --data-root is not given. */
export function defaultDataRoot(): string {
  return process.env.MIMIR_DATA ?? path.join(os.homedir(), '.mimir', 'datasets');
}

/**
 * The dataset a command-line word names: `builtin`, `cifar10` (under --data-root, default
 * ~/.mimir/datasets or MIMIR_DATA), or a folder (Tiny-ImageNet's layout when it has wnids.txt,
 * otherwise one sub-folder per class, resized to --image-size).
 */
export function datasetFromArg(
  word: string,
  options: { dataRoot?: string; imageSize?: number; split?: 'train' | 'test'; size?: number },
): DatasetSourceInput {
  const split = options.split ?? 'train';
  if (word === 'builtin') {
    return {
      kind: 'builtin',
      split,
      ...(options.imageSize ? { imageSize: options.imageSize } : {}),
      ...(options.size ? { size: options.size } : {}),
    };
  }
  if (word === 'cifar10')
    return { kind: 'cifar10', split, root: options.dataRoot ?? path.join(defaultDataRoot(), 'cifar10') };
  const dir = path.resolve(word);
  if (!existsSync(dir)) {
    throw new Error(`--dataset ${word}: no such folder; use builtin, cifar10 or the path of an image folder.`);
  }
  const tiny = [dir, path.join(dir, 'tiny-imagenet-200')].some((d) => existsSync(path.join(d, 'wnids.txt')));
  if (tiny)
    return { kind: 'tiny-imagenet', split, root: dir, ...(options.imageSize ? { imageSize: options.imageSize } : {}) };
  if (!options.imageSize) throw new Error(`--dataset ${word} is an image folder: give --image-size (e.g. 32 or 64).`);
  return { kind: 'folder', split, root: dir, imageSize: options.imageSize };
}

/** The dataset flags of the training commands (pretrain, finetune). */
export interface TrainingDatasetFlags {
  dataset: string;
  dataRoot?: string;
  imageSize?: number;
  datasetSize?: number;
}

/** Adds the training commands' dataset flags to `command`. */
export function withTrainingDatasetOptions(command: Command): Command {
  return command
    .option(
      '--dataset <name>',
      'builtin, cifar10, or an image folder (class per sub-folder, or Tiny-ImageNet)',
      'builtin',
    )
    .option('--data-root <dir>', 'where cifar10 lives (default ~/.mimir/datasets/cifar10, or $MIMIR_DATA/cifar10)')
    .option('--image-size <px>', 'image side for an image folder or the built-in set', positiveInt)
    .option('--dataset-size <n>', 'images of the built-in set (default 5000)', positiveInt);
}

/**
 * The config's dataset from the flags; undefined (keep the config file's) when the file names one and
 * --dataset was left at its default.
 */
export function trainingDatasetFromFlags(
  flags: TrainingDatasetFlags,
  fromFile: Record<string, unknown>,
): DatasetSourceInput | undefined {
  if (flags.dataset === 'builtin' && 'dataset' in fromFile) return undefined;
  return datasetFromArg(flags.dataset, {
    dataRoot: flags.dataRoot,
    imageSize: flags.imageSize,
    size: flags.datasetSize,
  });
}
