import * as tf from '@tensorflow/tfjs-core';
import { logSoftmaxRows, softmaxRows } from '../kernels';

/**
 * The fine-tuning objectives on logits, batch means unless said otherwise. Targets are rows of
 * class probabilities (one-hot, label-smoothed or MixUp/CutMix-mixed); `labels` one-hot rows of the
 * hard class where a method needs it (MART). Every loss is differentiable w.r.t. both logit inputs
 * (TRADES and MART train through p(clean) too, as their reference code does).
 */

/** Per-example cross-entropy against probability rows: -sum_k t_k log softmax(z)_k, [N]. */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(targets, logSoftmaxRows(logits)), 1)) as tf.Tensor1D);
}

/** Label smoothing over K outputs (PyTorch's and timm's): (1 - s) t + s / K. */
export function smoothTargets(targets: tf.Tensor2D, smoothing: number): tf.Tensor2D {
  if (smoothing === 0) return tf.clone(targets);
  const k = targets.shape[1];
  return tf.tidy(() => tf.add(tf.mul(targets, 1 - smoothing), smoothing / k) as tf.Tensor2D);
}

/** KL(softmax(p) || softmax(q)) per example, [N], from logits (log-softmax for both: no log of 0). */
export function klFromLogits(pLogits: tf.Tensor2D, qLogits: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const logP = logSoftmaxRows(pLogits);
    return tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logSoftmaxRows(qLogits))), 1) as tf.Tensor1D;
  });
}

/**
 * TRADES (Zhang et al. 2019): CE(clean, targets) + beta * KL(p(clean) || p(adv)), the KL summed over
 * classes and averaged over the batch (the reference's KLDivLoss(sum) / batch_size).
 */
export function tradesLoss(
  clean: tf.Tensor2D,
  adversarial: tf.Tensor2D,
  targets: tf.Tensor2D,
  beta: number,
): { loss: tf.Scalar; natural: tf.Scalar; robust: tf.Scalar } {
  return tf.tidy(() => {
    const natural = tf.mean(softCrossEntropy(clean, targets)) as tf.Scalar;
    const robust = tf.mean(klFromLogits(clean, adversarial)) as tf.Scalar;
    return { loss: tf.add(natural, tf.mul(robust, beta)) as tf.Scalar, natural, robust };
  });
}

/** One-hot rows of the most probable class other than the labelled one (arg-max: no gradient flows through it). */
function bestOtherClass(logits: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const classes = logits.shape[1];
    const masked = tf.where(tf.greater(labels, 0.5), tf.fill(logits.shape, -Infinity), logits);
    return tf.cast(tf.oneHot(tf.argMax(masked, 1), classes), 'float32') as tf.Tensor2D;
  });
}

/**
 * MART (Wang et al. 2020), as its reference code: boosted CE on the adversarial logits,
 * CE(adv, targets) - log(1.0001 - p_adv(best wrong class) + 1e-12), plus
 * beta * mean_i [KL(p(clean) || p(adv))_i * (1.0000001 - p_y(clean)_i)], where the KL's log p(adv)
 * is log(p_adv + 1e-12) as in the reference.
 */
export function martLoss(
  clean: tf.Tensor2D,
  adversarial: tf.Tensor2D,
  targets: tf.Tensor2D,
  labels: tf.Tensor2D,
  beta: number,
): { loss: tf.Scalar; boosted: tf.Scalar; robust: tf.Scalar } {
  return tf.tidy(() => {
    const advProbs = softmaxRows(adversarial);
    const wrong = bestOtherClass(adversarial, labels);
    const margin = tf.neg(tf.log(tf.add(tf.sub(1.0001, tf.sum(tf.mul(advProbs, wrong), 1)), 1e-12)));
    const boosted = tf.mean(tf.add(softCrossEntropy(adversarial, targets), margin)) as tf.Scalar;
    const logClean = logSoftmaxRows(clean);
    const cleanProbs = tf.exp(logClean);
    const kl = tf.sum(tf.mul(cleanProbs, tf.sub(logClean, tf.log(tf.add(advProbs, 1e-12)))), 1);
    const trueProbs = tf.sum(tf.mul(cleanProbs, labels), 1);
    const robust = tf.mean(tf.mul(kl, tf.sub(1.0000001, trueProbs))) as tf.Scalar;
    return { loss: tf.add(boosted, tf.mul(robust, beta)) as tf.Scalar, boosted, robust };
  });
}

/**
 * DBAT's targets over 2C outputs: clean rows keep their class distribution in the first C outputs,
 * adversarial rows move it to the dummy outputs C..2C-1; then label smoothing over all 2C outputs.
 * Rows: [clean; adversarial], 2N of them.
 */
export function dbatTargets(targets: tf.Tensor2D, smoothing: number): tf.Tensor2D {
  return tf.tidy(() => {
    const zeros = tf.zerosLike(targets);
    const both = tf.concat([tf.concat([targets, zeros], 1), tf.concat([zeros, targets], 1)], 0) as tf.Tensor2D;
    return smoothTargets(both, smoothing);
  });
}

/** DBAT (Levi & Kontorovich 2024): CE over the 2N rows [clean; adversarial] of 2C logits with dbatTargets. */
export function dbatLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, smoothing: number): tf.Scalar {
  return tf.tidy(() => tf.mean(softCrossEntropy(logits, dbatTargets(targets, smoothing))) as tf.Scalar);
}

/** Number of rows whose arg-max equals the label, as a scalar (read later, with the loss). */
export function correctCount(scores: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(scores, 1), labels), 'float32')) as tf.Scalar);
}
