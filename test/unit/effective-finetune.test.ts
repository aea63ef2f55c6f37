import { describe, expect, it } from 'vitest';
import {
  effectiveFinetune,
  effectiveFinetuneOf,
  FinetuneConfig,
  type FinetuneConfigInput,
} from '../../src/shared/finetune-config';

/**
 * The budget and learning rate the fine-tuning form shows are the ones the engine trains with: the
 * dataset's defaults where the config leaves them out (spec: eps 8/255 below 160 px, 4/255 above; base
 * lr 5e-3 on CIFAR-10 and the built-in set, 1e-3 otherwise), eps in pixel units, lr scaled by batch/256.
 */
function effective(overrides: Partial<FinetuneConfigInput>) {
  return effectiveFinetune(
    FinetuneConfig.parse({
      method: 'pgd-at',
      source: { kind: 'scratch', model: 'micro' },
      dataset: { kind: 'builtin', imageSize: 16, size: 64 },
      batchSize: 128,
      ...overrides,
    }),
  );
}

describe('effectiveFinetune', () => {
  it('fills the built-in dataset’s defaults and scales the lr by batch / 256', () => {
    const got = effective({});
    expect(got.epsDefault).toBe(true);
    expect(got.eps255).toBe(8);
    expect(got.eps).toBeCloseTo(8 / 255, 15);
    expect(got.threat).toBe('linf');
    expect(got.adversarial).toBe(true);
    expect(got.lrDefault).toBe(true);
    expect(got.baseLr).toBe(5e-3);
    // float64 reference: 5e-3 * 128 / 256 = 2.5e-3
    expect(got.lr).toBeCloseTo(0.0025, 15);
  });

  it('uses 4/255 and base lr 1e-3 for ImageNet-sized folders, and the values a config sets', () => {
    const folder = effective({ dataset: { kind: 'folder', root: '/data/imagenet', imageSize: 224 }, batchSize: 64 });
    expect([folder.eps255, folder.baseLr]).toEqual([4, 1e-3]);
    expect(folder.eps).toBeCloseTo(0.01568627450980392, 15);
    expect(folder.lr).toBeCloseTo(0.00025, 15);
    const set = effective({ threat: { norm: 'l2', eps: 128 }, optimizer: { baseLr: 2e-3 }, batchSize: 512 });
    expect([set.epsDefault, set.lrDefault, set.threat]).toEqual([false, false, 'l2']);
    expect(set.eps).toBeCloseTo(0.5019607843137255, 15);
    expect(set.lr).toBeCloseTo(0.004, 15);
  });

  it('says a natural fine-tuning trains on no budget (it is the held-out PGD’s)', () => {
    expect(effective({ method: 'natural' }).adversarial).toBe(false);
  });

  it('reads a form’s config whose other fields are not valid yet, and refuses a bad batch size', () => {
    const form = {
      method: 'trades',
      source: { kind: 'pretrained', checkpoint: '' },
      dataset: { kind: 'cifar10', root: '/data/cifar10' },
      batchSize: 256,
    };
    const got = effectiveFinetuneOf(form);
    expect(got && [got.eps255, got.baseLr]).toEqual([8, 5e-3]);
    expect(got?.lr).toBeCloseTo(0.005, 15);
    expect(effectiveFinetuneOf({ ...form, batchSize: -1 })).toBeNull();
  });
});
