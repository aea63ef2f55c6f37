import * as tf from '@tensorflow/tfjs-core';
import type { DbatMerge, FinetuneMethod } from '@shared/finetune-config';

/**
 * DBAT's test-time scores (Levi & Kontorovich 2024): the head has 2C outputs, class y scores
 * merge(z_y, z_{y+C}). 'max' is the authors' code (torch.max(out[:, :C], out[:, C:])); 'logsumexp'
 * is log(e^{z_y} + e^{z_{y+C}}), whose softmax is p_y + p_{y+C} of the 2C-way softmax.
 * Differentiable (attacks take gradients through it).
 */
export function mergeDbatLogits(logits: tf.Tensor2D, numClasses: number, merge: DbatMerge): tf.Tensor2D {
  return tf.tidy(() => {
    const n = logits.shape[0];
    if (logits.shape[1] !== 2 * numClasses) {
      throw new Error(`DBAT logits have ${logits.shape[1]} outputs, expected 2 x ${numClasses}`);
    }
    const real = tf.slice(logits, [0, 0], [n, numClasses]);
    const dummy = tf.slice(logits, [0, numClasses], [n, numClasses]);
    if (merge === 'max') return tf.maximum(real, dummy) as tf.Tensor2D;
    const top = tf.maximum(real, dummy);
    const sum = tf.add(tf.exp(tf.sub(real, top)), tf.exp(tf.sub(dummy, top)));
    return tf.add(top, tf.log(sum)) as tf.Tensor2D;
  });
}

/** Class scores from the head's logits: DBAT's merged scores, else the logits themselves. */
export function classScores(
  logits: tf.Tensor2D,
  method: FinetuneMethod,
  numClasses: number,
  merge: DbatMerge,
): tf.Tensor2D {
  return method === 'dbat' ? mergeDbatLogits(logits, numClasses, merge) : logits;
}
