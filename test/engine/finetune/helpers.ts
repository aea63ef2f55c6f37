import * as tf from '@tensorflow/tfjs-core';
import {
  FinetuneConfig,
  resolveFinetuneConfig,
  type FinetuneConfigInput,
  type FinetuneMethod,
  type ResolvedFinetuneConfig,
} from '../../../src/shared/finetune-config';
import { oneHotRows, type TrainBatch } from '../../../src/engine/finetune';
import { BuiltinDataset } from '../../../src/engine/data';

/** Micro runs on the built-in set at 16 px. */
export const MICRO_DATASET = { kind: 'builtin', imageSize: 16, size: 64 } as const;

export function microRun(method: FinetuneMethod, overrides: Partial<FinetuneConfigInput> = {}): ResolvedFinetuneConfig {
  return resolveFinetuneConfig(
    FinetuneConfig.parse({
      method,
      source: { kind: 'scratch', model: 'micro' },
      dataset: MICRO_DATASET,
      epochs: 2,
      batchSize: 8,
      // A head large enough that the first steps have gradients worth comparing.
      headInitStd: 0.02,
      ...overrides,
    }),
  );
}

/** A batch of the built-in train split (indices `start`..), one-hot targets. */
export function builtinBatch(n: number, numClasses = 10, start = 0): TrainBatch {
  const dataset = new BuiltinDataset({ kind: 'builtin', split: 'train', imageSize: 16, classes: numClasses, seed: 0 });
  const ids = Int32Array.from({ length: n }, (_, i) => start + i);
  const { images, labels } = dataset.getSync(ids);
  return {
    images: tf.tensor4d(images, [n, 16, 16, 3]),
    targets: tf.tensor2d(oneHotRows(labels, numClasses), [n, numClasses]),
    labels: tf.tensor1d(labels, 'int32'),
    labelValues: labels,
    ids,
  };
}

export function disposeBatch(batch: TrainBatch): void {
  tf.dispose([batch.images, batch.targets, batch.labels]);
}

/** Largest |a - b| relative to the largest |b| (1 when b is all zeros). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
    scale = Math.max(scale, Math.abs(b[i] ?? 0));
  }
  return worst / Math.max(scale, 1e-12);
}
