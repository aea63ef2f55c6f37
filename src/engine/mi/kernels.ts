import * as tf from '@tensorflow/tfjs-core';
import type { MiOptions } from '@shared/mi-config';
import { readForCpu } from './linalg-ops';

export type KernelBandwidth = Pick<MiOptions, 'sigma' | 'bandwidth'>;

/** [N, ...] -> [N, d]: the first axis holds the samples, everything else is one feature vector. */
export function flattenSamples(x: tf.Tensor): tf.Tensor2D {
  if (x.rank === 0) throw new Error('MI: a feature tensor needs a sample axis (got a scalar).');
  const n = x.shape[0] ?? 0;
  const d = n === 0 ? 0 : x.size / n;
  const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape<tf.Rank.R2>(x, [n, d]);
  return flat.dtype === 'float32' ? flat : tf.cast(flat, 'float32');
}

/**
 * Exponent E of the Gaussian Gram matrix K = exp(E) of the rows of x:
 * E_ij = -||x_i - x_j||^2 / (2 s^2), s^2 = sigma^2 d (fixed) or the batch's median squared
 * distance (median, a constant for gradients). The diagonal is exactly 0.
 *
 * Squared distances come from one matMul, ||a||^2 + ||b||^2 - 2 a.b, clamped at 0; the rows are
 * centred first (distances do not change) so that the expansion cancels less of float32's precision.
 * Estimators use expm1(E) = K - 1: the kernels of the spec's scaling are all close to 1, and the
 * centred statistics do not depend on that constant, so keeping it out keeps float32 digits.
 */
export function gaussianKernelExponent(x: tf.Tensor2D, bandwidth: KernelBandwidth): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, d] = x.shape;
    const centred = tf.sub<tf.Tensor2D>(x, tf.mean(x, 0, true));
    const halfSq = tf.mul(tf.sum(tf.square(centred), 1, true), 0.5);
    // -||x_i - x_j||^2 / 2, at most 0.
    const gram = gramMatrix(centred);
    const negHalfDist = tf.minimum<tf.Tensor2D>(tf.sub(tf.sub(gram, halfSq), tf.reshape(halfSq, [1, n])), 0);
    const offDiagonal = tf.sub(1, tf.eye(n));
    // webgpu cannot read the distances synchronously: there the median stays on the device.
    if (bandwidth.bandwidth === 'median' && tf.getBackend() === 'webgpu') {
      return tf.mul(negHalfDist, tf.div(offDiagonal, medianSquaredDistanceOnDevice(negHalfDist)));
    }
    const s2 =
      bandwidth.bandwidth === 'median' ? medianSquaredDistance(negHalfDist) : bandwidth.sigma * bandwidth.sigma * d;
    return tf.mul(negHalfDist, tf.mul(offDiagonal, 1 / s2));
  });
}

/**
 * X X^T with a hand-written gradient, (G + G^T) X. On the wasm backend a matMul with a transposed
 * operand runs about ten times slower than one without (measured: 256 x 3072 operands, 22 ms with
 * an explicit transpose against 230 ms with transposeB), and the stock matMul gradient uses both
 * transposed forms.
 */
function gramMatrix(x: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = inputs;
    if (!(input instanceof tf.Tensor) || typeof save !== 'function')
      throw new Error('gramMatrix: expected one tensor.');
    save([input]);
    return {
      value: tf.matMul(input, tf.transpose(input)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [features] = saved;
        if (!features) throw new Error('gramMatrix: the input was not saved for the gradient.');
        return tf.matMul(tf.add(dy, tf.transpose(dy)), features);
      },
    };
  });
  return op(x) as tf.Tensor2D;
}

/** The Gaussian Gram matrix itself, K = exp(E). */
export function gaussianKernel(x: tf.Tensor2D, bandwidth: KernelBandwidth): tf.Tensor2D {
  return tf.tidy(() => tf.exp(gaussianKernelExponent(x, bandwidth)));
}

/**
 * Median of ||x_i - x_j||^2 over i < j, read from -||x_i - x_j||^2 / 2. Falls back to the mean when
 * more than half of the pairs coincide, and to 1 when all points are the same.
 */
function medianSquaredDistance(negHalfDist: tf.Tensor2D): number {
  const n = negHalfDist.shape[0];
  const data = readForCpu(negHalfDist, 'the median kernel bandwidth');
  const pairs = new Float64Array((n * (n - 1)) / 2);
  let count = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dist = -2 * (data[i * n + j] as number);
      pairs[count++] = dist;
      total += dist;
    }
  }
  if (count === 0) return 1;
  if (!Number.isFinite(total)) throw new Error('MI: the features are not finite (NaN or infinity).');
  pairs.sort();
  const mid = count >> 1;
  const median = count % 2 === 1 ? (pairs[mid] as number) : 0.5 * ((pairs[mid - 1] as number) + (pairs[mid] as number));
  if (median > 0) return median;
  const mean = total / count;
  return mean > 0 ? mean : 1;
}

/**
 * medianSquaredDistance as a tensor, with no read back (for the webgpu backend): the n(n-1)/2 pair
 * distances gathered from the upper triangle, the smallest half taken by topK, and the same fallbacks
 * (the mean, then 1). A constant for gradients, like the CPU one. Non-finite features make it NaN
 * instead of an error: nothing is read here.
 */
function medianSquaredDistanceOnDevice(negHalfDist: tf.Tensor2D): tf.Scalar {
  const n = negHalfDist.shape[0];
  const op = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = inputs[0];
    if (!(x instanceof tf.Tensor)) throw new Error('the median kernel bandwidth: expected one tensor.');
    const upper: number[] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) upper.push(i * n + j);
    const count = upper.length;
    if (count === 0) return { value: tf.scalar(1), gradFunc: () => tf.zerosLike(x) };
    // -2 * (-||x_i - x_j||^2 / 2): the pair distances; topK of their negatives gives the smallest first.
    const negDist = tf.mul(tf.gather(tf.reshape(x, [-1]), tf.tensor1d(upper, 'int32')), 2);
    const mid = count >> 1;
    const smallest = tf.neg(tf.topk(negDist, mid + 1).values);
    const median =
      count % 2 === 1 ? tf.reshape(tf.slice(smallest, [mid], [1]), []) : tf.mean(tf.slice(smallest, [mid - 1], [2]));
    const mean = tf.neg(tf.mean(negDist));
    const positive = (v: tf.Tensor): tf.Tensor => tf.greater(v, 0);
    const s2 = tf.where(positive(median), median, tf.where(positive(mean), mean, tf.onesLike(mean)));
    return { value: s2, gradFunc: () => tf.zerosLike(x) };
  });
  return op(negHalfDist) as tf.Scalar;
}
