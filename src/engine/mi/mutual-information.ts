/**
 * The mutual-information estimators of spec section 4 (paper Appendix J), between two feature
 * tensors whose first axis is the batch: A (N x ...) and B (N x ...), each flattened per sample.
 * Every estimator returns a scalar tensor and is differentiable with respect to both inputs, so
 * MIMIR can put `lambda * MI(x + delta, z)` into the pre-training loss.
 */
import * as tf from '@tensorflow/tfjs-core';
// The estimators are used under tf.grad; tfjs-core alone registers no gradients.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { MiOptions, type MiEstimator, type MiOptionsInput } from '@shared/mi-config';
import { flattenSamples, gaussianKernelExponent } from './kernels';
import { regularisedProjection, renyiEntropyOfShiftedKernel } from './linalg-ops';

/** The estimators' settings, read from MiOptions or any config section that embeds them (a run's `mi`). */
const EstimatorOptions = MiOptions.strip();

function pair(a: tf.Tensor, b: tf.Tensor): [tf.Tensor2D, tf.Tensor2D, number] {
  const fa = flattenSamples(a);
  const fb = flattenSamples(b);
  const n = fa.shape[0];
  if (fb.shape[0] !== n)
    throw new Error(`MI: the inputs pair ${n} and ${fb.shape[0]} samples; they must have as many.`);
  if (n < 2) throw new Error(`MI: needs at least 2 samples, got ${n}.`);
  if (fa.shape[1] === 0 || fb.shape[1] === 0) throw new Error('MI: a feature vector is empty.');
  return [fa, fb, n];
}

/** H S H for a square S, H = I - 1 1^T / N: rows and columns centred. */
function doubleCentre(s: tf.Tensor2D): tf.Tensor2D {
  return tf.add(tf.sub(tf.sub(s, tf.mean(s, 1, true)), tf.mean(s, 0, true)), tf.mean(s));
}

/** Biased HSIC, tr(K_A H K_B H) / N^2 (paper Eq. 29), as the sum of the two double-centred kernels' product. */
export function hsic(a: tf.Tensor, b: tf.Tensor, options: MiOptionsInput = {}): tf.Scalar {
  const opts = EstimatorOptions.parse(options);
  return tf.tidy(() => {
    const [fa, fb, n] = pair(a, b);
    const centredA = doubleCentre(tf.expm1(gaussianKernelExponent(fa, opts)));
    const centredB = doubleCentre(tf.expm1(gaussianKernelExponent(fb, opts)));
    return tf.div(tf.sum(tf.mul(centredA, centredB)), n * n) as tf.Scalar;
  });
}

/**
 * The authors' code's normalised HSIC: Kc = K H (centred on one side), R = Kc (Kc + epsR N I)^-1,
 * nHSIC = tr(R_A R_B).
 *
 * Computed as tr(R~_A R~_B) with the symmetric R~ = C (C + epsR N I)^-1, C = H K H, which is the same
 * number: in a basis whose first vector is 1/sqrt(N), K H = [[0, a^T], [0, B]] with B = U^T K U, so
 * R = [[0, a^T (B + cI)^-1], [0, B (B + cI)^-1]] and R~ = [[0, 0], [0, B (B + cI)^-1]], and the
 * a-parts never reach the trace of a product. One-sided R has entries of size |a| / c that cancel
 * in that trace, which float32 cannot afford; R~ has eigenvalues in [0, 1).
 */
export function nhsic(a: tf.Tensor, b: tf.Tensor, options: MiOptionsInput = {}): tf.Scalar {
  const opts = EstimatorOptions.parse(options);
  return tf.tidy(() => {
    const [fa, fb, n] = pair(a, b);
    const ridge = opts.epsR * n;
    // H (K - 1 1^T) H = H K H: the constant the kernel is stored without is centred away.
    const project = (f: tf.Tensor2D): tf.Tensor2D =>
      regularisedProjection(doubleCentre(tf.expm1(gaussianKernelExponent(f, opts))), ridge);
    return tf.sum(tf.mul(project(fa), tf.transpose(project(fb)))) as tf.Scalar;
  });
}

/** Matrix-based Renyi alpha-entropy (paper Eq. 25) of one feature tensor's Gaussian Gram matrix, in bits. */
export function renyiEntropy(x: tf.Tensor, options: MiOptionsInput = {}): tf.Scalar {
  const opts = EstimatorOptions.parse(options);
  return tf.tidy(() => {
    const f = flattenSamples(x);
    if (f.shape[0] < 2) throw new Error(`MI: needs at least 2 samples, got ${f.shape[0]}.`);
    return renyiEntropyOfShiftedKernel(tf.expm1(gaussianKernelExponent(f, opts)), opts.alpha);
  });
}

/**
 * Matrix-based Renyi alpha-order MI (paper Eqs. 25-27), in bits: H(A) + H(B) - H(A, B), the joint
 * entropy from the trace-normalised Hadamard product K_A o K_B = exp(E_A + E_B).
 */
export function renyiMutualInformation(a: tf.Tensor, b: tf.Tensor, options: MiOptionsInput = {}): tf.Scalar {
  const opts = EstimatorOptions.parse(options);
  return tf.tidy(() => {
    const [fa, fb] = pair(a, b);
    const exponentA = gaussianKernelExponent(fa, opts);
    const exponentB = gaussianKernelExponent(fb, opts);
    const entropy = (exponent: tf.Tensor2D): tf.Scalar => renyiEntropyOfShiftedKernel(tf.expm1(exponent), opts.alpha);
    return tf.sub(tf.add(entropy(exponentA), entropy(exponentB)), entropy(tf.add(exponentA, exponentB)));
  });
}

/** The one entry point: the estimate of MI(A; B) by `estimator`, a differentiable scalar. */
export function mutualInformation(
  estimator: MiEstimator,
  a: tf.Tensor,
  b: tf.Tensor,
  options: MiOptionsInput = {},
): tf.Scalar {
  switch (estimator) {
    case 'hsic':
      return hsic(a, b, options);
    case 'nhsic':
      return nhsic(a, b, options);
    case 'renyi':
      return renyiMutualInformation(a, b, options);
    default: {
      const unknown: never = estimator;
      throw new Error(`MI: unknown estimator "${String(unknown)}".`);
    }
  }
}
