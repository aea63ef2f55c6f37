import * as tf from '@tensorflow/tfjs-core';
import type { LandscapePgd } from '@shared/landscape';
import { numPatches, type ModelConfig } from '@shared/model-config';
import { crossEntropyLoss, pgd, type Classifier } from '../attacks';
import { evaluationBatches, type Dataset } from '../data';
import { maeForward, randomMasking, type ParamMap, type PatchMask } from '../model';
import { Rng } from '../rng';
import type { PointEvaluator } from './sweep';

/**
 * The losses a landscape can plot, each as a PointEvaluator over examples loaded once: the batch
 * tensors (and reconstruction masks) stay in memory for the whole sweep, so a grid point costs only
 * its forward passes. Means are over all examples; per-batch sums are read once per point and added
 * in float64.
 */

export interface ExampleBatch {
  images: tf.Tensor4D;
  labels: Int32Array;
  labelTensor: tf.Tensor1D;
  /** Dataset indices: PGD keys each example's random start on (seed, id), the same at every point. */
  ids: Int32Array;
}

export interface ExampleSet {
  batches: ExampleBatch[];
  count: number;
  dispose(): void;
}

/** The first `count` examples of `dataset` in index order, as batch tensors. */
export async function loadExamples(dataset: Dataset, count: number, batchSize: number): Promise<ExampleSet> {
  const batches: ExampleBatch[] = [];
  const dispose = () => {
    for (const b of batches) tf.dispose([b.images, b.labelTensor]);
    batches.length = 0;
  };
  try {
    for await (const b of evaluationBatches(dataset, batchSize, count)) {
      batches.push({ images: b.images, labels: b.labelValues, labelTensor: b.labels, ids: b.indices });
    }
  } catch (error) {
    dispose();
    throw error;
  }
  return { batches, count: batches.reduce((n, b) => n + b.labels.length, 0), dispose };
}

async function sumRows(rows: tf.Tensor1D[]): Promise<number[]> {
  const stacked = tf.stack(rows);
  tf.dispose(rows);
  const [count, width] = stacked.shape;
  const data = await stacked.data();
  stacked.dispose();
  const sums = new Array<number>(width ?? 0).fill(0);
  for (let r = 0; r < (count ?? 0); r++)
    for (let c = 0; c < sums.length; c++) sums[c] += data[r * sums.length + c] ?? 0;
  return sums;
}

/** Mean cross-entropy and accuracy on the clean examples. */
export function cleanCrossEntropy(model: Classifier, examples: ExampleSet, classes: number): PointEvaluator {
  return async () => {
    const rows = examples.batches.map((b) =>
      tf.tidy(() => {
        const logits = model(b.images);
        const y = tf.cast(tf.oneHot(b.labelTensor, classes), 'float32') as tf.Tensor2D;
        const ce = tf.sum(crossEntropyLoss(logits, y));
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), b.labelTensor), 'float32'));
        return tf.stack([ce, correct]) as tf.Tensor1D;
      }),
    );
    const [ce = NaN, correct = 0] = await sumRows(rows);
    return { loss: ce / examples.count, accuracy: correct / examples.count };
  };
}

/**
 * Mean cross-entropy at PGD examples found against the weights of the point being evaluated (the
 * final iterate, not the best one, so the value is the attack's loss after `steps` steps), and the
 * accuracy under that attack. Random starts repeat at every point (seed, dataset index).
 */
export function pgdCrossEntropy(
  model: Classifier,
  examples: ExampleSet,
  settings: LandscapePgd,
  seed: number,
  signal?: AbortSignal,
): PointEvaluator {
  return async () => {
    let loss = 0;
    let robust = 0;
    for (const b of examples.batches) {
      const result = await pgd(model, b.images, b.labels, {
        threat: settings.threat,
        eps: settings.eps,
        steps: settings.steps,
        alpha: settings.alpha,
        randomStart: settings.randomStart,
        restarts: 1,
        keep: 'last',
        loss: 'ce',
        seed,
        ids: b.ids,
        ...(signal ? { signal } : {}),
      });
      result.xAdv.dispose();
      for (const value of result.loss) loss += value;
      for (const r of result.robust) if (r) robust += 1;
    }
    return { loss: loss / examples.count, accuracy: robust / examples.count };
  };
}

/** Seed offset of the reconstruction masks, so they do not share the directions' stream. */
const MASK_SEED_SALT = 0x6d61736b;

/** One random mask per example, drawn once (batch by batch) for the landscape's `seed`, reused at every point. */
export function fixedMasks(examples: ExampleSet, config: ModelConfig, maskRatio: number, seed: number): PatchMask[] {
  const rng = new Rng((seed ^ MASK_SEED_SALT) >>> 0);
  return examples.batches.map((b) => randomMasking(rng, b.labels.length, numPatches(config), maskRatio));
}

/** Mean reconstruction loss (MSE on the masked patches) of the masked autoencoder with the fixed masks. */
export function reconstructionLoss(
  params: ParamMap,
  config: ModelConfig,
  examples: ExampleSet,
  masks: readonly PatchMask[],
  normPixLoss: boolean,
): PointEvaluator {
  return async () => {
    const rows = examples.batches.map((b, i) =>
      tf.tidy(() => {
        const mask = masks[i];
        if (!mask) throw new Error(`no mask for batch ${i}`);
        const { loss } = maeForward(params, config, b.images, mask, { trainParams: false, normPixLoss });
        // Every example has as many masked patches, so the batch mean weighted by its size adds up to the mean.
        return tf.reshape(tf.mul(loss, b.labels.length), [1]) as tf.Tensor1D;
      }),
    );
    const [sum = NaN] = await sumRows(rows);
    return { loss: sum / examples.count, accuracy: null };
  };
}
