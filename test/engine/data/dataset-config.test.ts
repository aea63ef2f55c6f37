import { describe, expect, it } from 'vitest';
import {
  AugmentationConfig,
  BUILTIN_CLASSES,
  DatasetSource,
  FINETUNE_AUGMENTATION,
  PRETRAIN_AUGMENTATION,
  builtinSize,
} from '../../../src/shared/dataset-config';

const messages = (result: { success: boolean; error?: { issues: { message: string }[] } }) =>
  (result.error?.issues ?? []).map((i) => i.message).join(' | ');

describe('dataset source schema', () => {
  it('fills defaults for each kind', () => {
    const builtin = DatasetSource.parse({ kind: 'builtin' });
    expect(builtin).toEqual({ kind: 'builtin', split: 'train', seed: 0, classes: 10, imageSize: 32 });
    if (builtin.kind !== 'builtin') throw new Error('kind');
    expect(builtinSize(builtin)).toBe(5000);
    const test = DatasetSource.parse({ kind: 'builtin', split: 'test' });
    if (test.kind !== 'builtin') throw new Error('kind');
    expect(builtinSize(test)).toBe(1000);
    expect(DatasetSource.parse({ kind: 'cifar10', root: ' /data/cifar ' })).toEqual({
      kind: 'cifar10',
      split: 'train',
      root: '/data/cifar',
    });
    expect(DatasetSource.parse({ kind: 'folder', root: '/x', imageSize: 224 })).toEqual({
      kind: 'folder',
      split: 'train',
      root: '/x',
      imageSize: 224,
      testFraction: 0.1,
      onBadImage: 'stop',
    });
    expect(DatasetSource.parse({ kind: 'tiny-imagenet', root: '/t', split: 'test' })).toEqual({
      kind: 'tiny-imagenet',
      split: 'test',
      root: '/t',
      imageSize: 64,
      onBadImage: 'stop',
    });
    expect(BUILTIN_CLASSES.length).toBeGreaterThanOrEqual(10);
  });

  it('rejects bad sources with messages that say what is wrong', () => {
    const cases: [unknown, string][] = [
      [{ kind: 'imagenet' }, "dataset kind must be one of 'builtin', 'cifar10', 'folder', 'tiny-imagenet'"],
      [{ kind: 'cifar10' }, 'root must be a path'],
      [{ kind: 'cifar10', root: '  ' }, 'root must name a folder or file'],
      [{ kind: 'folder', root: '/x' }, 'imageSize is required for an image folder'],
      [{ kind: 'folder', root: '/x', imageSize: 4 }, 'imageSize must be at least 8 pixels'],
      [{ kind: 'builtin', classes: 11 }, 'the built-in dataset has at most 10 classes'],
      [{ kind: 'builtin', size: 2.5 }, 'size must be a whole number of images'],
      [{ kind: 'builtin', split: 'val' }, "split must be 'train' or 'test'"],
      [{ kind: 'builtin', imageSize: 8 }, 'the built-in dataset needs imageSize >= 12'],
      [{ kind: 'folder', root: '/x', imageSize: 32, onBadImage: 'ignore' }, "onBadImage must be 'stop' or 'skip'"],
    ];
    for (const [input, message] of cases) {
      const result = DatasetSource.safeParse(input);
      expect(result.success, JSON.stringify(input)).toBe(false);
      expect(messages(result)).toContain(message);
    }
  });
});

describe('augmentation schema', () => {
  it('has the spec defaults for pre-training and fine-tuning', () => {
    expect(PRETRAIN_AUGMENTATION).toEqual({
      kind: 'random-resized-crop',
      scale: [0.2, 1],
      ratio: [3 / 4, 4 / 3],
      flip: true,
    });
    expect(FINETUNE_AUGMENTATION).toEqual({ kind: 'pad-crop', padding: 4, flip: true });
  });

  it('rejects inverted or out-of-range crop parameters', () => {
    const cases: [unknown, string][] = [
      [{ kind: 'random-resized-crop', scale: [0.8, 0.2] }, 'scale must have min <= max'],
      [{ kind: 'random-resized-crop', scale: [0.2, 1.5] }, 'scale must lie within'],
      [{ kind: 'random-resized-crop', ratio: [2, 1] }, 'ratio must have min <= max'],
      [{ kind: 'pad-crop', padding: -1 }, 'padding must be >= 0'],
      [{ kind: 'mixup' }, "augmentation kind must be one of 'none', 'random-resized-crop', 'pad-crop'"],
    ];
    for (const [input, message] of cases) {
      const result = AugmentationConfig.safeParse(input);
      expect(result.success, JSON.stringify(input)).toBe(false);
      expect(messages(result)).toContain(message);
    }
  });
});
