import * as tf from '@tensorflow/tfjs-core';
import { marginLoss } from './losses';
import { finishAttack, oneHot, predictions, startAttack } from './oracle';
import { replaceWhere } from './tracking';
import { throwIfAborted, type AttackResult, type Classifier, type CommonAttackOptions, type Labels } from './types';

/**
 * Carlini-Wagner l_2 with a fixed constant c (Table V: c = 1), as torchattacks' CW: minimise
 * ||x' - x||_2^2 + c * max(z_y - max_{i != y} z_i, -kappa) over w with x' = (tanh(w) + 1) / 2, by Adam,
 * for a fixed number of steps, keeping per example the smallest misclassified x' seen. Examples never
 * misclassified keep x. Unbounded: `robustWithinEps` also counts only perturbations within eps.
 */

export interface CwL2Options extends CommonAttackOptions {
  /** Default 1. */
  c?: number;
  /** Default 0. */
  kappa?: number;
  /** Adam steps. Default 100. */
  steps?: number;
  /** Default 0.01. */
  learningRate?: number;
  /** When given, robustWithinEps treats adversarial examples beyond this l_2 radius as failures. */
  eps?: number;
}

export interface CwL2Result extends AttackResult {
  /** Robust when only perturbations with ||delta||_2 <= eps count (equals robust without eps). */
  robustWithinEps: boolean[];
}

export async function cwL2(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: CwL2Options = {},
): Promise<CwL2Result> {
  const c = options.c ?? 1;
  const kappa = options.kappa ?? 0;
  const steps = options.steps ?? 100;
  const lr = options.learningRate ?? 0.01;
  const [beta1, beta2, epsilon] = [0.9, 0.999, 1e-8];
  const start = await startAttack(model, x, labels, undefined);
  const { y, counter, clean } = start;
  clean.logits.dispose();
  const yOneHot = oneHot(y, clean.classes);
  const n = y.length;

  const toImage = (w: tf.Tensor) => tf.mul(tf.add(tf.tanh(w), 1), 0.5) as tf.Tensor4D;
  // atanh of the image, scaled by 1 - 1e-6 as Carlini & Wagner so that pixels at 0 or 1 stay finite.
  let w = tf.tidy(() => {
    const u = tf.mul(tf.sub(tf.mul(x, 2), 1), 1 - 1e-6);
    return tf.mul(tf.log(tf.div(tf.add(1, u), tf.sub(1, u))), 0.5) as tf.Tensor4D;
  });
  let m = tf.zerosLike(w);
  let v = tf.zerosLike(w);
  // Smallest squared distance of a misclassified iterate, per example.
  const bestDistance = new Float32Array(n).fill(Infinity);
  // Examples never misclassified keep the clean image.
  let bestImage = tf.clone(x);

  const objective = (wv: tf.Tensor) => {
    const image = toImage(wv);
    const logits = model(image);
    const distance = tf.sum(tf.square(tf.reshape(tf.sub(image, x), [n, -1])), 1);
    // marginLoss is max_{i != y} z_i - z_y; CW's f is its negative, floored at -kappa.
    const f = tf.maximum(tf.neg(marginLoss(logits, yOneHot)), -kappa);
    return { image, logits, distance, total: tf.add(distance, tf.mul(f, c)) };
  };

  try {
    for (let step = 1; step <= steps; step++) {
      throwIfAborted(options.signal);
      const seen: { state: { image: tf.Tensor4D; logits: tf.Tensor2D; distance: tf.Tensor } | null } = { state: null };
      const grad = tf.grad((wv: tf.Tensor) => {
        const o = objective(wv);
        seen.state = { image: tf.keep(o.image), logits: tf.keep(o.logits), distance: tf.keep(o.distance) };
        return tf.sum(o.total);
      })(w);
      counter.gradientCalls++;
      const state = seen.state;
      if (state === null) throw new Error('the CW objective was not evaluated');
      // As torchattacks: judge the point the gradient was taken at, before the update.
      const [pred, distance] = await Promise.all([predictions(state.logits), state.distance.data()]);
      const better = Array.from(y, (label, i) => pred[i] !== label && distance[i] < bestDistance[i]);
      better.forEach((b, i) => {
        if (b) bestDistance[i] = distance[i];
      });
      if (better.some(Boolean)) bestImage = replaceWhere(bestImage, better, state.image);
      tf.dispose([state.image, state.logits, state.distance]);

      const next = tf.tidy(() => {
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(grad, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(grad), 1 - beta2));
        const mHat = tf.div(m1, 1 - beta1 ** step);
        const vHat = tf.div(v1, 1 - beta2 ** step);
        const w1 = tf.sub(w, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), epsilon)), lr));
        return [w1, m1, v1] as tf.Tensor4D[];
      });
      tf.dispose([w, m, v, grad]);
      [w, m, v] = next as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      options.onProgress?.({ attack: 'cw-l2', done: step, total: steps, active: n });
    }
  } catch (error) {
    bestImage.dispose();
    throw error;
  } finally {
    tf.dispose([w, m, v]);
  }
  const cwLoss = (xa: tf.Tensor4D, z: tf.Tensor2D) =>
    tf.add(
      tf.sum(tf.square(tf.reshape(tf.sub(xa, x), [n, -1])), 1),
      tf.mul(tf.maximum(tf.neg(marginLoss(z, yOneHot)), -kappa), c),
    ) as tf.Tensor1D;
  const result = await finishAttack(start, bestImage, 'l2', cwLoss);
  yOneHot.dispose();
  const limit = options.eps;
  const robustWithinEps = result.robust.map(
    (r, i) => r || (clean.correct[i] === true && limit !== undefined && (result.norm[i] ?? 0) > limit),
  );
  return { ...result, robustWithinEps };
}
