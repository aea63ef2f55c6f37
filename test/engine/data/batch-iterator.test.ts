import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BatchIterator,
  BatchIteratorState,
  evaluationBatches,
  type ArrayBatch,
} from '../../../src/engine/data/batch-iterator';
import type { Dataset, ExampleBatch } from '../../../src/engine/data/dataset';
import { BuiltinDataset } from '../../../src/engine/data/procedural';
import { BuiltinSource, PRETRAIN_AUGMENTATION } from '../../../src/shared/dataset-config';
import { useBackend } from '../../helpers/backend';

beforeAll(async () => {
  await useBackend('cpu');
});

const small = (size = 50) => new BuiltinDataset(BuiltinSource.parse({ kind: 'builtin', size, imageSize: 16 }));

async function take(iterator: BatchIterator, n: number): Promise<ArrayBatch[]> {
  const batches: ArrayBatch[] = [];
  for (let i = 0; i < n; i++) batches.push(await iterator.nextArrays());
  return batches;
}

/** A dataset that records which indices were asked for, and can fail on demand. */
class RecordingDataset implements Dataset {
  readonly numClasses = 2;
  readonly classNames = ['a', 'b'];
  readonly imageSize = 4;
  readonly description = { kind: 'builtin' as const, split: 'train' as const, location: 'test', summary: 'recording' };
  readonly requests: number[][] = [];
  failAt: number | null = null;
  constructor(readonly length: number) {}
  labelOf(index: number): number {
    return index % 2;
  }
  async get(indices: ArrayLike<number>): Promise<ExampleBatch> {
    const list = Array.from(indices);
    this.requests.push(list);
    if (this.failAt !== null && list.includes(this.failAt)) throw new Error(`cannot read image ${this.failAt}`);
    const images = new Float32Array(list.length * 48);
    list.forEach((index, i) => images.fill(index / this.length, i * 48, (i + 1) * 48));
    return { images, labels: Int32Array.from(list, (i) => this.labelOf(i)) };
  }
}

describe('BatchIterator', () => {
  it('visits every index once per epoch, in a new seeded order each epoch, dropping the incomplete batch', async () => {
    const ds = new RecordingDataset(50);
    const iterator = new BatchIterator(ds, { batchSize: 8, seed: 1 });
    expect(iterator.batchesPerEpoch).toBe(6);
    const batches = await take(iterator, 12);
    const epoch0 = batches.slice(0, 6).flatMap((b) => Array.from(b.indices));
    const epoch1 = batches.slice(6).flatMap((b) => Array.from(b.indices));
    expect(new Set(epoch0).size).toBe(48);
    expect(new Set(epoch1).size).toBe(48);
    expect(epoch0).not.toEqual(epoch1);
    expect(batches.map((b) => [b.epoch, b.batch])).toEqual(
      [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5].map((b, i) => [i < 6 ? 0 : 1, b]),
    );
    for (const b of batches) expect(Array.from(b.labels)).toEqual(Array.from(b.indices, (i) => i % 2));
    const other = await take(new BatchIterator(ds, { batchSize: 8, seed: 2 }), 1);
    expect(Array.from(other[0]?.indices ?? [])).not.toEqual(Array.from(batches[0]?.indices ?? []));
  });

  it('keeps order and the last short batch when asked (no shuffle, no drop)', async () => {
    const iterator = new BatchIterator(new RecordingDataset(10), {
      batchSize: 4,
      seed: 1,
      shuffle: false,
      dropLast: false,
    });
    expect(iterator.batchesPerEpoch).toBe(3);
    const batches = await take(iterator, 4);
    expect(batches.map((b) => Array.from(b.indices))).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
      [0, 1, 2, 3],
    ]);
  });

  it('resumes from a saved state with exactly the remaining batches (augmented, across epochs)', async () => {
    const ds = small();
    const options = { batchSize: 8, seed: 42, augmentation: PRETRAIN_AUGMENTATION };
    const reference = await take(new BatchIterator(ds, options), 14);

    const first = new BatchIterator(ds, options);
    await take(first, 4);
    const saved: unknown = JSON.parse(JSON.stringify(first.state()));
    const state = BatchIteratorState.parse(saved);
    expect(state).toMatchObject({ epoch: 0, batch: 4 });
    const resumed = await take(new BatchIterator(ds, { ...options, seed: 999, state }), 10);
    resumed.forEach((b, i) => {
      const expected = reference[i + 4] as ArrayBatch;
      expect([b.epoch, b.batch]).toEqual([expected.epoch, expected.batch]);
      expect(b.indices).toEqual(expected.indices);
      expect(b.labels).toEqual(expected.labels);
      expect(b.images).toEqual(expected.images);
    });
    // The augmentation did change the images.
    const raw = await ds.get((reference[0] as ArrayBatch).indices);
    expect(raw.images).not.toEqual((reference[0] as ArrayBatch).images);
  });

  it('gives the same batches whatever the prefetch depth', async () => {
    const ds = small();
    const options = { batchSize: 16, seed: 5, augmentation: PRETRAIN_AUGMENTATION };
    const none = await take(new BatchIterator(ds, { ...options, prefetch: 0 }), 7);
    const deep = await take(new BatchIterator(ds, { ...options, prefetch: 4 }), 7);
    deep.forEach((b, i) => expect(b.images).toEqual((none[i] as ArrayBatch).images));
  });

  it('starts loading the next batch before the current one is used', async () => {
    const ds = new RecordingDataset(40);
    const iterator = new BatchIterator(ds, { batchSize: 10, seed: 3, prefetch: 1 });
    await iterator.nextArrays();
    await new Promise((resolve) => setImmediate(resolve));
    expect(ds.requests).toHaveLength(2);
    const noPrefetch = new RecordingDataset(40);
    await new BatchIterator(noPrefetch, { batchSize: 10, seed: 3, prefetch: 0 }).nextArrays();
    await new Promise((resolve) => setImmediate(resolve));
    expect(noPrefetch.requests).toHaveLength(1);
  });

  it('passes a loading error to the caller of next, including one met while prefetching', async () => {
    const ds = new RecordingDataset(20);
    const iterator = new BatchIterator(ds, { batchSize: 5, seed: 1, shuffle: false, prefetch: 2 });
    ds.failAt = 7;
    await expect(iterator.nextArrays()).resolves.toBeDefined();
    await expect(iterator.nextArrays()).rejects.toThrow('cannot read image 7');
    // Once the cause is gone, the iterator carries on with the batch that failed.
    ds.failAt = null;
    expect(iterator.state()).toMatchObject({ epoch: 0, batch: 1 });
    const retried = await iterator.nextArrays();
    expect(Array.from(retried.indices)).toEqual([5, 6, 7, 8, 9]);
    expect(Array.from((await iterator.nextArrays()).indices)).toEqual([10, 11, 12, 13, 14]);
  });

  it('yields one float32 [n, s, s, 3] tensor and one int32 label tensor per batch, and leaks none', async () => {
    const ds = small();
    const iterator = new BatchIterator(ds, { batchSize: 8, seed: 1, augmentation: PRETRAIN_AUGMENTATION });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) {
      const batch = await iterator.next();
      expect(tf.memory().numTensors).toBe(before + 2);
      expect(batch.images.shape).toEqual([8, 16, 16, 3]);
      expect(batch.images.dtype).toBe('float32');
      expect(batch.labels.shape).toEqual([8]);
      expect(batch.labels.dtype).toBe('int32');
      expect(Array.from(await batch.labels.data())).toEqual(Array.from(batch.labelValues));
      const values = await batch.images.data();
      expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...values)).toBeLessThanOrEqual(1);
      batch.images.dispose();
      batch.labels.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a batch larger than the dataset and a state from another batch size', () => {
    expect(() => new BatchIterator(small(5), { batchSize: 8, seed: 1 })).toThrow('fewer than one batch');
    expect(
      () =>
        new BatchIterator(small(), { batchSize: 8, seed: 1, state: { epoch: 0, batch: 6, epochRng: [1, 2, 3, 4] } }),
    ).toThrow('an epoch has 6 batches');
  });
});

describe('evaluationBatches', () => {
  it('passes over every image once in index order, last batch short, without leaking tensors', async () => {
    const ds = small(21);
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const sizes: number[] = [];
    for await (const batch of evaluationBatches(ds, 8)) {
      seen.push(...batch.indices);
      sizes.push(batch.images.shape[0]);
      const expected = await ds.get(batch.indices);
      expect(await batch.images.data()).toEqual(expected.images);
      batch.images.dispose();
      batch.labels.dispose();
    }
    expect(seen).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(sizes).toEqual([8, 8, 5]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
