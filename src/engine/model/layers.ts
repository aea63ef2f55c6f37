import * as tf from '@tensorflow/tfjs-core';
// Registers tfjs-core's gradient functions (tfjs-core alone ships none registered).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import {
  columnSums,
  gelu as geluKernel,
  geluWithSlope,
  gemm,
  layerNormGradKernel,
  layerNormKernel,
  layerNormParamGradsKernel,
  engineKernelsAvailable,
} from '../kernels';
import { asSave, savedAt, type GradSave } from '../kernels/grad-save';

/**
 * Linear layer, LayerNorm and GELU with hand-written gradients. Why: tfjs's own gradient of matMul
 * multiplies with transposeA/transposeB set, which tfjs-wasm runs on a naive kernel about ten times
 * slower than a plain product; here every product goes through `gemm`, which on wasm is the
 * engine's own kernel taking transposed operands at full speed. The LayerNorm and GELU gradients
 * are also fewer ops than tfjs's autodiff of their forward graphs.
 *
 * Activations are 2-D [rows, features]: tokens of all samples stacked, so that one layer is one
 * matMul. With `trainParams: false` the weights enter as constants: no gradient is computed for
 * them, which saves a third of the backward work when only input gradients are wanted (attacks).
 */

function asTensor2D(t: tf.Tensor | GradSave): tf.Tensor2D {
  if (!(t instanceof tf.Tensor) || t.rank !== 2) throw new Error('expected a 2-D tensor');
  return t as tf.Tensor2D;
}

function asTensor1D(t: tf.Tensor | GradSave): tf.Tensor1D {
  if (!(t instanceof tf.Tensor) || t.rank !== 1) throw new Error('expected a 1-D tensor');
  return t as tf.Tensor1D;
}

/** x [R, in] @ w [in, out] + b [out]. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, trainParams = true): tf.Tensor2D {
  if (trainParams) return linearTrainable(x, w, b) as tf.Tensor2D;
  const frozen = tf.customGrad((xIn: tf.Tensor | GradSave) => ({
    value: gemm(asTensor2D(xIn), w, { bias: b }),
    gradFunc: (dy: tf.Tensor) => gemm(dy as tf.Tensor2D, w, { transposeB: true }),
  }));
  return frozen(x) as tf.Tensor2D;
}

/** x [R, in] @ w [in, out], no bias (timm's qkv_bias=False layers). */
export function linearNoBias(x: tf.Tensor2D, w: tf.Tensor2D, trainParams = true): tf.Tensor2D {
  if (!trainParams) {
    const frozen = tf.customGrad((xIn: tf.Tensor | GradSave) => ({
      value: gemm(asTensor2D(xIn), w),
      gradFunc: (dy: tf.Tensor) => gemm(dy as tf.Tensor2D, w, { transposeB: true }),
    }));
    return frozen(x) as tf.Tensor2D;
  }
  return linearNoBiasTrainable(x, w) as tf.Tensor2D;
}

const linearNoBiasTrainable = tf.customGrad(
  (xIn: tf.Tensor | GradSave, wIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
    const x = asTensor2D(xIn);
    const w = asTensor2D(wIn);
    asSave(saveIn)([x, w]);
    return {
      value: gemm(x, w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dy2 = dy as tf.Tensor2D;
        const xs = savedAt(saved, 0) as tf.Tensor2D;
        const ws = savedAt(saved, 1) as tf.Tensor2D;
        return [gemm(dy2, ws, { transposeB: true }), gemm(xs, dy2, { transposeA: true })];
      },
    };
  },
);

const linearTrainable = tf.customGrad(
  (xIn: tf.Tensor | GradSave, wIn: tf.Tensor | GradSave, bIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
    const x = asTensor2D(xIn);
    const w = asTensor2D(wIn);
    const b = asTensor1D(bIn);
    asSave(saveIn)([x, w]);
    return {
      value: gemm(x, w, { bias: b }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dy2 = dy as tf.Tensor2D;
        const xs = savedAt(saved, 0) as tf.Tensor2D;
        const ws = savedAt(saved, 1) as tf.Tensor2D;
        const dw = gemm(xs, dy2, { transposeA: true });
        const db = engineKernelsAvailable() ? columnSums(dy2) : tf.sum(dy2, 0);
        return [gemm(dy2, ws, { transposeB: true }), dw, db];
      },
    };
  },
);

export const LAYER_NORM_EPS = 1e-6;

/** LayerNorm over the last axis of x [R, D], eps 1e-6 (timm ViT), biased variance as PyTorch. */
export function layerNorm(x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, trainParams = true): tf.Tensor2D {
  if (trainParams) return layerNormTrainable(x, w, b) as tf.Tensor2D;
  const frozen = tf.customGrad((xIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
    const { value, xhat, rstd } = layerNormForward(asTensor2D(xIn), w, b);
    asSave(saveIn)([xhat, rstd]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        layerNormInputGrad(dy as tf.Tensor2D, savedAt(saved, 0), savedAt(saved, 1), w),
    };
  });
  return frozen(x) as tf.Tensor2D;
}

/** y, and the xhat and rstd the backward pass needs (one pass over x with the wasm kernels). */
function layerNormForward(x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D) {
  if (engineKernelsAvailable()) {
    const [value, xhat, rstd] = layerNormKernel(x, w, b, LAYER_NORM_EPS);
    return { value, xhat, rstd };
  }
  const mean = tf.mean(x, 1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), 1, true);
  const rstd = tf.rsqrt(tf.add(variance, LAYER_NORM_EPS));
  const xhat = tf.mul(centred, rstd);
  return { value: tf.add(tf.mul(xhat, w), b) as tf.Tensor2D, xhat, rstd };
}

/** dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w. */
function layerNormInputGrad(dy: tf.Tensor2D, xhat: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor): tf.Tensor {
  if (engineKernelsAvailable()) return layerNormGradKernel(dy, xhat, rstd, w);
  const g = tf.mul(dy, w);
  const meanG = tf.mean(g, 1, true);
  const meanGX = tf.mean(tf.mul(g, xhat), 1, true);
  return tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(xhat, meanGX)), rstd);
}

const layerNormTrainable = tf.customGrad(
  (xIn: tf.Tensor | GradSave, wIn: tf.Tensor | GradSave, bIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
    const w = asTensor1D(wIn);
    const { value, xhat, rstd } = layerNormForward(asTensor2D(xIn), w, asTensor1D(bIn));
    asSave(saveIn)([xhat, rstd, w]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const xhatS = savedAt(saved, 0);
        const dx = layerNormInputGrad(dy as tf.Tensor2D, xhatS, savedAt(saved, 1), savedAt(saved, 2));
        if (engineKernelsAvailable()) return [dx, ...layerNormParamGradsKernel(dy, xhatS)];
        return [dx, tf.sum(tf.mul(dy, xhatS), 0), tf.sum(dy, 0)];
      },
    };
  },
);

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU, x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2 (PyTorch's default, not the tanh form). */
export function gelu(x: tf.Tensor2D): tf.Tensor2D {
  if (!engineKernelsAvailable()) return geluWithOps(x) as tf.Tensor2D;
  // No gradient being recorded: the value alone.
  if (tf.engine().state.gradientDepth === 0) return geluKernel(x) as tf.Tensor2D;
  return geluWithKernels(x) as tf.Tensor2D;
}

/**
 * On wasm, one pass computes the value and the slope Phi(x) + x phi(x), so the backward pass is a
 * product (tfjs-wasm's erf and exp alone took most of the time of the ops of geluWithOps).
 */
const geluWithKernels = tf.customGrad((xIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
  const [value, slope] = geluWithSlope(xIn as tf.Tensor);
  asSave(saveIn)([slope]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, savedAt(saved, 0)),
  };
});

const geluWithOps = tf.customGrad((xIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
  const x = xIn as tf.Tensor;
  const cdf = tf.add(tf.mul(tf.erf(tf.mul(x, Math.SQRT1_2)), 0.5), 0.5);
  asSave(saveIn)([x, cdf]);
  return {
    value: tf.mul(x, cdf),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const xs = savedAt(saved, 0);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
      return tf.mul(dy, tf.add(savedAt(saved, 1), tf.mul(xs, pdf)));
    },
  };
});
