import * as tf from '@tensorflow/tfjs-core';
import { logSoftmaxRows } from '../kernels';

/**
 * Per-example attack losses on logits, all to be maximised by the attacker. Sorting logits has no
 * gradient in tfjs, so the ranks are taken as constant one-hot masks (a custom gradient of zero) and
 * the sorted logits are read through them: the gradient flows to exactly the logits the reference
 * implementation's sort selects.
 */

export type LogitLossName = 'ce' | 'margin' | 'dlr' | 'dlr-targeted';

export interface LossLabels {
  /** One-hot true labels, float32 [N, C]. */
  y: tf.Tensor2D;
  /** One-hot target classes for the targeted DLR loss. */
  target?: tf.Tensor2D;
}

/** Constant masks [N, k, C]: row j is the one-hot position of the (j+1)-th largest logit. */
function rankMasks(z: tf.Tensor2D, k: number): tf.Tensor3D {
  const classes = z.shape[1];
  const masks = tf.customGrad((...inputs) => {
    const logits = inputs[0];
    if (!(logits instanceof tf.Tensor)) throw new Error('rankMasks expects logits');
    return {
      value: tf.tidy(() => tf.cast(tf.oneHot(tf.topk(logits, k).indices, classes), 'float32')),
      gradFunc: () => tf.zerosLike(logits),
    };
  });
  return masks(z) as tf.Tensor3D;
}

interface Ranked {
  /** The k largest logits per example, largest first, differentiable: [N, k]. */
  sorted: tf.Tensor2D;
  /** 1 where the true class holds the largest logit (a constant). */
  trueIsTop: tf.Tensor1D;
}

function ranked(z: tf.Tensor2D, y: tf.Tensor2D, k: number): Ranked {
  const masks = rankMasks(z, k);
  const sorted = tf.sum(tf.mul(tf.expandDims(z, 1), masks), 2) as tf.Tensor2D;
  const topMask = tf.reshape(tf.slice(masks, [0, 0, 0], [z.shape[0], 1, z.shape[1]]), z.shape);
  return { sorted, trueIsTop: tf.sum(tf.mul(topMask, y), 1) as tf.Tensor1D };
}

function column(t: tf.Tensor2D, j: number): tf.Tensor1D {
  return tf.reshape(tf.slice(t, [0, j], [t.shape[0], 1]), [t.shape[0]]);
}

export function crossEntropyLoss(z: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(y, logSoftmaxRows(z)), 1)) as tf.Tensor1D;
}

/** z_y and the largest other logit, differentiable. */
function trueAndBestOther(z: tf.Tensor2D, y: tf.Tensor2D, r: Ranked): [tf.Tensor1D, tf.Tensor1D] {
  const zy = tf.sum(tf.mul(z, y), 1) as tf.Tensor1D;
  const top1 = column(r.sorted, 0);
  const top2 = column(r.sorted, 1);
  // As the reference: when the true class holds the largest logit, the best other is the runner-up.
  const other = tf.add(tf.mul(top2, r.trueIsTop), tf.mul(top1, tf.sub(1, r.trueIsTop))) as tf.Tensor1D;
  return [zy, other];
}

/** CW margin loss max_{i != y} z_i - z_y: PGD on it is the CW l_inf attack. */
export function marginLoss(z: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor1D {
  const [zy, other] = trueAndBestOther(z, y, ranked(z, y, 2));
  return tf.sub(other, zy) as tf.Tensor1D;
}

/** DLR (Croce & Hein 2020): -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12). Needs 3 classes. */
export function dlrLoss(z: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor1D {
  const r = ranked(z, y, 3);
  const [zy, other] = trueAndBestOther(z, y, r);
  const scale = tf.add(tf.sub(column(r.sorted, 0), column(r.sorted, 2)), 1e-12);
  return tf.neg(tf.div(tf.sub(zy, other), scale)) as tf.Tensor1D;
}

/** Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12). Needs 4 classes. */
export function dlrTargetedLoss(z: tf.Tensor2D, y: tf.Tensor2D, target: tf.Tensor2D): tf.Tensor1D {
  const sorted = ranked(z, y, 4).sorted;
  const zy = tf.sum(tf.mul(z, y), 1);
  const zt = tf.sum(tf.mul(z, target), 1);
  const scale = tf.add(tf.sub(column(sorted, 0), tf.mul(tf.add(column(sorted, 2), column(sorted, 3)), 0.5)), 1e-12);
  return tf.neg(tf.div(tf.sub(zy, zt), scale)) as tf.Tensor1D;
}

export function minClassesFor(loss: LogitLossName): number {
  return loss === 'dlr' ? 3 : loss === 'dlr-targeted' ? 4 : 2;
}

export function logitLoss(name: LogitLossName, z: tf.Tensor2D, labels: LossLabels): tf.Tensor1D {
  switch (name) {
    case 'ce':
      return crossEntropyLoss(z, labels.y);
    case 'margin':
      return marginLoss(z, labels.y);
    case 'dlr':
      return dlrLoss(z, labels.y);
    case 'dlr-targeted':
      if (!labels.target) throw new Error('the targeted DLR loss needs target classes');
      return dlrTargetedLoss(z, labels.y, labels.target);
  }
}

/** z_y - max_{i != y} z_i (not for gradients). */
export function classificationMargin(z: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const zy = tf.sum(tf.mul(z, y), 1);
    const others = tf.where(tf.greater(y, 0), tf.fill(z.shape, -Infinity), z);
    return tf.sub(zy, tf.max(others, 1)) as tf.Tensor1D;
  });
}
