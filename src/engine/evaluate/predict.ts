import * as tf from '@tensorflow/tfjs-core';
import { loadClassifierCheckpoint } from '../finetune/classifier-checkpoint';

export interface Prediction {
  /** Class scores [N, classes] (DBAT: the merged scores), float32, row-major. */
  logits: Float32Array;
  shape: [number, number];
  predictions: Int32Array;
  classNames: string[];
  checkpoint: string;
  method: string;
}

/**
 * Class scores of a fine-tuned checkpoint for images NHWC float32 in [0, 1] ([H, W, C] is one image),
 * in batches of `batchSize`.
 */
export async function predictLogits(
  checkpoint: string,
  images: Float32Array,
  shape: readonly number[],
  options: { batchSize?: number } = {},
): Promise<Prediction> {
  const dims = shape.length === 3 ? [1, ...shape] : [...shape];
  if (dims.length !== 4)
    throw new Error(`images must be NHWC [N, H, W, C] (or one [H, W, C]), got shape [${shape.join(', ')}]`);
  const [n, h, w, c] = dims as [number, number, number, number];
  if (images.length !== n * h * w * c)
    throw new Error(`${images.length} values do not fill shape [${dims.join(', ')}]`);
  for (let i = 0; i < images.length; i++) {
    const v = images[i] ?? Number.NaN;
    if (!(v >= 0 && v <= 1)) {
      throw new Error(`value ${i} is ${v}: images must be float32 pixels in [0, 1] (divide 0..255 data by 255)`);
    }
  }
  const model = await loadClassifierCheckpoint(checkpoint);
  try {
    const size = model.modelConfig.imageSize;
    if (h !== size || w !== size || c !== model.modelConfig.channels) {
      throw new Error(
        `the model takes [N, ${size}, ${size}, ${model.modelConfig.channels}] images, got [${dims.join(', ')}]`,
      );
    }
    const batch = Math.max(1, options.batchSize ?? 64);
    const logits = new Float32Array(n * model.numClasses);
    const predictions = new Int32Array(n);
    const pixels = h * w * c;
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      const x = tf.tensor4d(images.subarray(start * pixels, (start + count) * pixels), [count, h, w, c], 'float32');
      const scores = model.predict(x);
      const argmax = tf.argMax(scores, 1);
      logits.set(await scores.data(), start * model.numClasses);
      predictions.set(await argmax.data(), start);
      tf.dispose([x, scores, argmax]);
    }
    const bad = logits.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const image = Math.floor(bad / model.numClasses);
      throw new Error(
        `the model's score ${bad % model.numClasses} for image ${image} is ${logits[bad]}: the checkpoint ${model.path} gives non-finite logits (its weights hold NaN or Infinity, or overflow float32). Use an earlier checkpoint of the run.`,
      );
    }
    return {
      logits,
      shape: [n, model.numClasses],
      predictions,
      classNames: model.classNames,
      checkpoint: model.path,
      method: model.method,
    };
  } finally {
    model.dispose();
  }
}
