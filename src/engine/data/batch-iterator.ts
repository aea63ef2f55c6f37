import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { NO_AUGMENTATION, type AugmentationConfig } from '@shared/dataset-config';
import { distinctSample, Rng, type RngState } from '../rng';
import { augmentBatch } from './augment';
import type { Dataset } from './dataset';
import { hashSeed } from './hash';

/** Where an iterator stands: the next batch it yields is batch `batch` of epoch `epoch`. */
export const BatchIteratorState = z.object({
  epoch: z.number().int().min(0),
  batch: z.number().int().min(0),
  /** The Rng state at the start of `epoch`: it draws that epoch's order and its augmentation seed. */
  epochRng: z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]),
});
export type BatchIteratorState = z.infer<typeof BatchIteratorState>;

export interface BatchIteratorOptions {
  batchSize: number;
  /** Seed of the data-order and augmentation stream (ignored when `state` is given). */
  seed: number;
  /** Shuffle every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last incomplete batch of an epoch (default true), so every batch has `batchSize` images. */
  dropLast?: boolean;
  augmentation?: AugmentationConfig;
  /** How many batches to load ahead of the one being trained on (default 1). */
  prefetch?: number;
  /** Resume exactly where a saved iterator stood. */
  state?: BatchIteratorState;
  /**
   * Extra (generated) images mixed into every batch: round(ratio x batchSize) of each batch are
   * drawn from `dataset` (distinct within the batch, seeded by the epoch and batch), the rest come
   * from the main dataset in epoch order, which alone sets the epoch's length. Their indices follow
   * the main dataset's: main.length + extra index.
   */
  extra?: { dataset: Dataset; ratio: number };
}

/** Salt of the stream that picks a batch's extra images (apart from its augmentation's). */
const EXTRA_STREAM = 0x65787472;

/** One batch as plain arrays (what the loader produces before it becomes tensors). */
export interface ArrayBatch {
  images: Float32Array;
  labels: Int32Array;
  indices: Int32Array;
  epoch: number;
  batch: number;
}

/** One batch as tensors; the caller disposes `images` and `labels`. */
export interface TensorBatch {
  /** [batch, size, size, 3] float32 in [0, 1]. */
  images: tf.Tensor4D;
  /** [batch] int32 class ids. */
  labels: tf.Tensor1D;
  labelValues: Int32Array;
  indices: Int32Array;
  epoch: number;
  batch: number;
}

interface EpochPlan {
  epoch: number;
  order: Int32Array;
  augmentSeed: number;
  startRng: RngState;
  /** The Rng state after this epoch's draws: the start state of the next epoch. */
  nextRng: RngState;
}

/**
 * An endless stream of training batches over a dataset, epoch after epoch. Each epoch's order and
 * each batch's augmentation follow from the epoch's Rng state and the batch number alone, so loading
 * ahead (prefetch) changes nothing and a saved state resumes with the very same remaining batches.
 * Images stay Float32Arrays until the end: one tf.tensor4d per batch.
 */
export class BatchIterator {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  /** Images of each batch from the main dataset, and from the extra one. */
  readonly mainPerBatch: number;
  readonly extraPerBatch: number;
  private readonly extra: Dataset | null;
  private readonly shuffle: boolean;
  private readonly augmentation: AugmentationConfig;
  private readonly prefetchDepth: number;
  /** Plans of the epochs from the cursor's to the furthest one being loaded. */
  private readonly plans = new Map<number, EpochPlan>();
  /** The next batch to hand out (epoch, batch). */
  private cursor: { epoch: number; batch: number };
  /** The next batch to start loading. */
  private loadCursor: { epoch: number; batch: number };
  private readonly pending: Promise<ArrayBatch>[] = [];

  constructor(
    readonly dataset: Dataset,
    options: BatchIteratorOptions,
  ) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`batchSize must be a positive whole number, got ${options.batchSize}.`);
    }
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle ?? true;
    this.augmentation = options.augmentation ?? NO_AUGMENTATION;
    this.prefetchDepth = Math.max(0, Math.floor(options.prefetch ?? 1));
    this.extra = options.extra?.dataset ?? null;
    this.extraPerBatch = options.extra ? Math.round(options.extra.ratio * this.batchSize) : 0;
    this.mainPerBatch = this.batchSize - this.extraPerBatch;
    if (options.extra && (this.extraPerBatch === 0 || this.mainPerBatch === 0)) {
      throw new RangeError(
        `extraData.ratio ${options.extra.ratio} of a batch of ${this.batchSize} is ${this.extraPerBatch} generated images and ${this.mainPerBatch} of the dataset; ` +
          'choose a ratio (or batch size) that leaves at least one of each.',
      );
    }
    const dropLast = options.dropLast ?? true;
    this.batchesPerEpoch = dropLast
      ? Math.floor(dataset.length / this.mainPerBatch)
      : Math.ceil(dataset.length / this.mainPerBatch);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(
        `The ${dataset.description.split} set has ${dataset.length} images, fewer than one batch of ${this.mainPerBatch}.`,
      );
    }
    const state = options.state ?? { epoch: 0, batch: 0, epochRng: new Rng(options.seed).state() };
    if (state.batch >= this.batchesPerEpoch) {
      throw new RangeError(
        `Saved iterator state is at batch ${state.batch}, but an epoch has ${this.batchesPerEpoch} batches.`,
      );
    }
    this.plans.set(state.epoch, this.planEpoch(state.epoch, state.epochRng));
    this.cursor = { epoch: state.epoch, batch: state.batch };
    this.loadCursor = { ...this.cursor };
  }

  /** The state to save: restoring it yields exactly the batches this iterator would yield next. */
  state(): BatchIteratorState {
    const plan = this.planFor(this.cursor.epoch);
    return { epoch: this.cursor.epoch, batch: this.cursor.batch, epochRng: [...plan.startRng] };
  }

  /** The next batch as arrays (loading the following ones in the background). */
  async nextArrays(): Promise<ArrayBatch> {
    while (this.pending.length < this.prefetchDepth + 1) this.pending.push(this.startLoad());
    const promise = this.pending.shift();
    if (!promise) throw new Error('unreachable: no pending batch');
    let batch: ArrayBatch;
    try {
      batch = await promise;
    } catch (error) {
      // Drop the loads queued behind the failed one: a retry starts again at the failed batch.
      this.close();
      throw error;
    }
    this.advance();
    // Start the next load now, so it runs while the caller trains on this batch.
    while (this.pending.length < this.prefetchDepth) this.pending.push(this.startLoad());
    return batch;
  }

  /** The next batch as tensors: images [n, s, s, 3] float32, labels [n] int32. */
  async next(): Promise<TensorBatch> {
    const b = await this.nextArrays();
    const size = this.dataset.imageSize;
    return {
      images: tf.tensor4d(b.images, [b.labels.length, size, size, 3], 'float32'),
      labels: tf.tensor1d(b.labels, 'int32'),
      labelValues: b.labels,
      indices: b.indices,
      epoch: b.epoch,
      batch: b.batch,
    };
  }

  /** Forgets loads in flight (their results are dropped); the next call loads from the cursor again. */
  close(): void {
    this.pending.length = 0;
    this.loadCursor = { ...this.cursor };
  }

  private advance(): void {
    const previous = this.cursor.epoch;
    this.cursor = step(this.cursor, this.batchesPerEpoch);
    if (this.cursor.epoch !== previous) {
      this.planFor(this.cursor.epoch);
      this.plans.delete(previous);
    }
  }

  private startLoad(): Promise<ArrayBatch> {
    const { epoch, batch } = this.loadCursor;
    this.loadCursor = step(this.loadCursor, this.batchesPerEpoch);
    const plan = this.planFor(epoch);
    // Yield to the event loop first so that a load never runs inside the caller's current step.
    const promise = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.load(plan, batch));
    promise.catch(() => undefined); // a failure surfaces when this batch is awaited, not as an unhandled rejection
    return promise;
  }

  private async load(plan: EpochPlan, batch: number): Promise<ArrayBatch> {
    const start = batch * this.mainPerBatch;
    const main = plan.order.slice(start, Math.min(start + this.mainPerBatch, plan.order.length));
    let { images, labels } = await this.dataset.get(main);
    let indices = main;
    if (this.extra) {
      const seed = hashSeed(plan.augmentSeed, batch, EXTRA_STREAM);
      const picked = Int32Array.from(distinctSample(this.extra.length, this.extraPerBatch, seed));
      const added = await this.extra.get(picked);
      images = concat(Float32Array, images, added.images);
      labels = concat(Int32Array, labels, added.labels);
      indices = concat(
        Int32Array,
        main,
        picked.map((i) => i + this.dataset.length),
      );
    }
    const rng = new Rng(hashSeed(plan.augmentSeed, batch));
    const augmented = augmentBatch(images, indices.length, this.dataset.imageSize, this.augmentation, rng);
    return { images: augmented, labels, indices, epoch: plan.epoch, batch };
  }

  private planFor(epoch: number): EpochPlan {
    const known = this.plans.get(epoch);
    if (known) return known;
    const previous = this.plans.get(epoch - 1) ?? (epoch > this.cursor.epoch ? this.planFor(epoch - 1) : undefined);
    if (!previous) throw new Error(`unreachable: epoch ${epoch} requested while at epoch ${this.cursor.epoch}`);
    const plan = this.planEpoch(epoch, previous.nextRng);
    this.plans.set(epoch, plan);
    return plan;
  }

  private planEpoch(epoch: number, startRng: EpochPlan['startRng']): EpochPlan {
    const rng = Rng.fromState(startRng);
    const order = new Int32Array(this.dataset.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i] as number;
        order[i] = order[j] as number;
        order[j] = t;
      }
    }
    const augmentSeed = rng.nextUint32();
    return { epoch, order, augmentSeed, startRng: [...startRng], nextRng: rng.state() };
  }
}

function concat<T extends Float32Array | Int32Array>(Kind: { new (length: number): T }, a: T, b: T): T {
  const out = new Kind(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function step(cursor: { epoch: number; batch: number }, perEpoch: number): { epoch: number; batch: number } {
  return cursor.batch + 1 < perEpoch
    ? { epoch: cursor.epoch, batch: cursor.batch + 1 }
    : { epoch: cursor.epoch + 1, batch: 0 };
}

/**
 * One ordered pass over a dataset for evaluation: every image once, in index order, the last batch
 * possibly smaller, no augmentation; the next batch loads while the caller works on the current one.
 * The caller disposes each batch's tensors.
 */
export async function* evaluationBatches(
  dataset: Dataset,
  batchSize: number,
  limit = dataset.length,
): AsyncGenerator<TensorBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive whole number, got ${batchSize}.`);
  }
  const total = Math.min(limit, dataset.length);
  const size = dataset.imageSize;
  const load = (start: number) => {
    const indices = new Int32Array(Math.min(batchSize, total - start));
    for (let i = 0; i < indices.length; i++) indices[i] = start + i;
    const promise = dataset.get(indices).then((b) => ({ ...b, indices }));
    promise.catch(() => undefined);
    return promise;
  };
  let pending = total > 0 ? load(0) : null;
  for (let start = 0, batch = 0; pending; start += batchSize, batch++) {
    const b = await pending;
    pending = start + batchSize < total ? load(start + batchSize) : null;
    yield {
      images: tf.tensor4d(b.images, [b.labels.length, size, size, 3], 'float32'),
      labels: tf.tensor1d(b.labels, 'int32'),
      labelValues: b.labels,
      indices: b.indices,
      epoch: 0,
      batch,
    };
  }
}
