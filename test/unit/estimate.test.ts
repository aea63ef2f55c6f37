import { describe, expect, it } from 'vitest';
import type { Run } from '../../src/shared/store-types';
import {
  estimateRun,
  formatEstimate,
  measuredRate,
  measuringConfig,
  workOf,
} from '../../src/renderer/src/forms/estimate';

/** A finished run with what the estimate reads. */
function run(overrides: Partial<Run>): Run {
  return {
    id: 'r',
    experimentId: 1,
    name: 'r',
    kind: 'pretrain',
    status: 'done',
    config: { model: 'micro', dataset: { kind: 'builtin', imageSize: 16 } },
    parentRunId: null,
    outDir: null,
    backend: 'wasm',
    pid: null,
    createdAt: 0,
    startedAt: 0,
    endedAt: 1000,
    lastEventAt: null,
    step: null,
    totalSteps: null,
    epoch: null,
    epochs: null,
    imagesPerSecond: 100,
    etaSeconds: null,
    error: null,
    errorCause: null,
    lastCheckpoint: null,
    output: null,
    summary: null,
    tags: [],
    note: null,
    ...overrides,
  };
}

const PRETRAIN = { model: 'micro', dataset: { kind: 'builtin', size: 1000, imageSize: 16 }, epochs: 3, batchSize: 64 };

describe('workOf', () => {
  it('counts whole batches × epochs for training, examples × attacks, points × examples', () => {
    // 1000 images in batches of 64: 15 whole batches = 960 images per epoch.
    expect(workOf('pretrain', PRETRAIN)).toBe(960 * 3);
    // CIFAR-10's 50,000 training images.
    expect(workOf('finetune', { dataset: { kind: 'cifar10', root: '/c' }, epochs: 2, batchSize: 100 })).toBe(100_000);
    // An image folder's size is not in the config.
    expect(workOf('pretrain', { dataset: { kind: 'folder', root: '/f' }, epochs: 1, batchSize: 8 })).toBeNull();
    const evaluate = {
      dataset: { kind: 'builtin', split: 'test', size: 64 },
      examples: { count: 100 },
      attacks: [{}, {}, {}],
    };
    expect(workOf('evaluate', evaluate)).toBe(64 * 3);
    expect(workOf('landscape', { grid: [5, 3], examples: 20 })).toBe(5 * 3 * 20);
  });
});

describe('estimateRun', () => {
  it('divides the work by the median throughput of the latest similar runs on the backend', () => {
    const finished = [
      run({ id: 'a', imagesPerSecond: 100, endedAt: 1 }),
      run({ id: 'b', imagesPerSecond: 300, endedAt: 2 }),
      run({ id: 'c', imagesPerSecond: 200, endedAt: 3 }),
      // Not comparable: another backend, model, image size, kind, or not done.
      run({ id: 'd', imagesPerSecond: 1, backend: 'cpu' }),
      run({ id: 'e', imagesPerSecond: 1, config: { model: 'small-cpu', dataset: { imageSize: 16 } } }),
      run({ id: 'f', imagesPerSecond: 1, config: { model: 'micro', dataset: { imageSize: 32 } } }),
      run({ id: 'g', imagesPerSecond: 1, kind: 'finetune' }),
      run({ id: 'h', imagesPerSecond: 1, status: 'failed' }),
    ];
    const estimate = estimateRun('pretrain', PRETRAIN, 'wasm', finished);
    expect(estimate).toEqual({ seconds: 2880 / 200, rate: 200, backend: 'wasm', runs: 3 });
    expect(estimateRun('pretrain', PRETRAIN, 'tensorflow', finished)).toBeNull();
    expect(
      estimateRun('pretrain', { ...PRETRAIN, dataset: { kind: 'folder', root: '/f' } }, 'wasm', finished),
    ).toBeNull();
  });

  it('measures evaluations by their work over their wall time', () => {
    const config = {
      dataset: { kind: 'builtin', split: 'test', size: 64 },
      examples: { count: 32 },
      attacks: [{}, {}],
    };
    // 64 attacked examples in 4 s: 16 per second.
    const done = run({ kind: 'evaluate', config, startedAt: 10_000, endedAt: 14_000, imagesPerSecond: null });
    expect(measuredRate(done)).toBe(16);
    const estimate = estimateRun('evaluate', { ...config, examples: { count: 64 }, attacks: [{}, {}, {}] }, 'wasm', [
      { ...done, config: { ...config, model: undefined } },
    ]);
    expect(estimate?.seconds).toBe((64 * 3) / 16);
  });
});

describe('formatEstimate and measuringConfig', () => {
  it('says seconds, minutes or hours', () => {
    expect([formatEstimate(12.4), formatEstimate(600), formatEstimate(3 * 3600)]).toEqual([
      'about 12 s',
      'about 10 min',
      'about 3.0 h',
    ]);
  });

  it('shrinks training to one epoch of four batches of the built-in set, and refuses other datasets', () => {
    expect(measuringConfig('pretrain', PRETRAIN)).toMatchObject({ epochs: 1, dataset: { size: 256 } });
    expect(measuringConfig('finetune', { ...PRETRAIN, heldOut: { size: 500 } })).toMatchObject({
      heldOut: { size: 0 },
    });
    expect(measuringConfig('pretrain', { ...PRETRAIN, dataset: { kind: 'cifar10', root: '/c' } })).toBeNull();
    expect(measuringConfig('evaluate', { examples: { count: 1000 } })).toMatchObject({ examples: { count: 32 } });
  });
});
