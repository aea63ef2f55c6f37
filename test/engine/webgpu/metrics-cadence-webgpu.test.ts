import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { BatchIterator } from '../../../src/engine/data';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import { PendingMetrics } from '../../../src/engine/train/pending-metrics';
import { collectEvents } from '../../../src/engine/train/run-lifecycle';
import { useSwiftShader } from './swiftshader';

/**
 * A micro MIMIR pre-training on webgpu (SwiftShader): no step reads the device (every read of the
 * backend counted, kernels included), the metrics are read in one transfer every 8 steps by default,
 * and the previews are written.
 */
describe('metrics read every few steps on webgpu (SwiftShader)', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('a step never reads the device; the run reads its metrics every 8 steps (the default)', async () => {
    const backend = tf.backend();
    let inStep = false;
    const readsInStep: number[] = [];
    let readsOutside = 0;
    const startStep = () => {
      if (!inStep) readsInStep.push(0);
      inStep = true;
    };
    const nextArrays = BatchIterator.prototype.nextArrays;
    vi.spyOn(BatchIterator.prototype, 'nextArrays').mockImplementation(function (this: BatchIterator) {
      startStep();
      return nextArrays.call(this);
    });
    const countRead = () => {
      if (inStep) readsInStep[readsInStep.length - 1] = (readsInStep.at(-1) ?? 0) + 1;
      else readsOutside += 1;
    };
    const read = backend.read.bind(backend);
    vi.spyOn(backend, 'read').mockImplementation((dataId) => {
      countRead();
      return read(dataId);
    });
    const readSync = backend.readSync.bind(backend);
    vi.spyOn(backend, 'readSync').mockImplementation((dataId) => {
      countRead();
      return readSync(dataId);
    });
    // A step ends when the lifecycle queues its metrics.
    const add = PendingMetrics.prototype.add;
    vi.spyOn(PendingMetrics.prototype, 'add').mockImplementation(function (this: PendingMetrics<unknown>, ...args) {
      inStep = false;
      add.apply(this, args);
    });
    let metricReads = 0;
    const readPending = PendingMetrics.prototype.read;
    vi.spyOn(PendingMetrics.prototype, 'read').mockImplementation(function (this: PendingMetrics<unknown>) {
      metricReads += 1;
      return readPending.call(this);
    });
    const { events, emit } = collectEvents();
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-cadence-webgpu-'));
    await runPretraining(
      {
        mode: 'mimir',
        model: 'micro',
        dataset: { kind: 'builtin', size: 64, imageSize: 16 },
        batchSize: 4,
        epochs: 1,
        attack: { steps: 1 },
        mi: { estimator: 'hsic' },
        previewCount: 2,
      },
      { outDir, emit },
    );
    vi.restoreAllMocks();
    expect(events.at(-1)?.type).toBe('done');
    const losses = events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : []));
    expect(losses).toHaveLength(16);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(readsInStep).toEqual(new Array(16).fill(0));
    expect(metricReads).toBe(2);
    expect(readsOutside).toBeGreaterThan(0);
    // At the start and at the epoch's end.
    expect(readdirSync(path.join(outDir, 'previews')).sort()).toEqual(['step-0000000', 'step-0000016']);
  }, 300_000);
});
