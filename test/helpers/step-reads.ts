import * as tf from '@tensorflow/tfjs-core';
import { vi } from 'vitest';
import { BatchIterator } from '../../src/engine/data';
import { PendingMetrics } from '../../src/engine/train/pending-metrics';

export interface StepReads {
  /** Reads inside each training step, from the step's batch to the lifecycle queueing its metrics. */
  readsInStep: number[];
  /** Reads outside steps (the pending metrics, previews, held-out passes). */
  readsOutside: number;
  /** How many times the lifecycle read its pending metrics. */
  metricReads: number;
}

/** Where values leave tensors: the engine's own calls (wasm's kernels read its memory directly, no device read). */
export function spyTensorReads(onRead: () => void): void {
  for (const method of ['data', 'dataSync', 'array', 'arraySync', 'bytes'] as const) {
    const original = tf.Tensor.prototype[method] as (this: tf.Tensor) => unknown;
    vi.spyOn(tf.Tensor.prototype, method).mockImplementation(function (this: tf.Tensor) {
      onRead();
      return original.call(this) as never;
    });
  }
}

/** Where values leave the active backend: every read, kernels' own included (on webgpu, a GPU -> CPU copy). */
export function spyBackendReads(onRead: () => void): void {
  const backend = tf.backend();
  const read = backend.read.bind(backend);
  vi.spyOn(backend, 'read').mockImplementation((dataId) => {
    onRead();
    return read(dataId);
  });
  const readSync = backend.readSync.bind(backend);
  vi.spyOn(backend, 'readSync').mockImplementation((dataId) => {
    onRead();
    return readSync(dataId);
  });
}

/** Runs a training run, counting the reads `spyReads` sees inside and outside its steps; restores every spy. */
export async function countStepReads(
  run: () => Promise<unknown>,
  spyReads: (onRead: () => void) => void,
): Promise<StepReads> {
  let inStep = false;
  const counts: StepReads = { readsInStep: [], readsOutside: 0, metricReads: 0 };
  const startStep = () => {
    if (!inStep) counts.readsInStep.push(0);
    inStep = true;
  };
  const next = BatchIterator.prototype.next;
  vi.spyOn(BatchIterator.prototype, 'next').mockImplementation(function (this: BatchIterator) {
    startStep();
    return next.call(this);
  });
  const nextArrays = BatchIterator.prototype.nextArrays;
  vi.spyOn(BatchIterator.prototype, 'nextArrays').mockImplementation(function (this: BatchIterator) {
    startStep();
    return nextArrays.call(this);
  });
  const add = PendingMetrics.prototype.add;
  vi.spyOn(PendingMetrics.prototype, 'add').mockImplementation(function (this: PendingMetrics<unknown>, ...args) {
    inStep = false;
    add.apply(this, args);
  });
  const read = PendingMetrics.prototype.read;
  vi.spyOn(PendingMetrics.prototype, 'read').mockImplementation(function (this: PendingMetrics<unknown>) {
    counts.metricReads += 1;
    return read.call(this);
  });
  spyReads(() => {
    if (!inStep) counts.readsOutside += 1;
    else counts.readsInStep[counts.readsInStep.length - 1] = (counts.readsInStep.at(-1) ?? 0) + 1;
  });
  try {
    await run();
  } finally {
    vi.restoreAllMocks();
  }
  return counts;
}
