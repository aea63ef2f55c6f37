import * as tf from '@tensorflow/tfjs-core';
import { registerWebgpuKernels, webgpuKernelsAvailable } from '../webgpu/kernels';
import { registerWasmKernels, wasmKernelsAvailable } from './wasm-kernels';

export { wasmKernelsAvailable, wasmKernelThreads } from './wasm-kernels';
export { webgpuKernelsAvailable } from '../webgpu/kernels';
export { logSoftmaxRows, softmaxRows } from './softmax';

registerWasmKernels();
registerWebgpuKernels();

/**
 * True where the engine's own GEMM, GELU, LayerNorm and bias-gradient kernels run: the wasm SIMD
 * ones on wasm, the WGSL ones on webgpu. Attention has its own kernels on each: see model/attention.ts.
 */
export function engineKernelsAvailable(): boolean {
  return wasmKernelsAvailable() || webgpuKernelsAvailable();
}

export interface GemmOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  /** Added to every row of the product. */
  bias?: tf.Tensor1D;
}

/**
 * op(a) @ op(b) (+ bias) for 2-D float32 tensors: the engine's own kernel on wasm and webgpu,
 * tfjs's matMul elsewhere. No gradient is registered: callers sit inside a tf.customGrad with their own.
 */
export function gemm(a: tf.Tensor2D, b: tf.Tensor2D, options: GemmOptions = {}): tf.Tensor2D {
  const { transposeA = false, transposeB = false, bias } = options;
  if (engineKernelsAvailable()) {
    const inputs: tf.NamedTensorMap = bias ? { a, b, bias } : { a, b };
    return tf.engine().runKernel('MimirGemm', inputs, { transposeA, transposeB, alpha: 1 }) as tf.Tensor2D;
  }
  if (tf.getBackend() === 'wasm') {
    // tfjs-wasm multiplies transposed operands on a naive kernel: transpose explicitly instead.
    const left = transposeA ? tf.transpose(a) : a;
    const right = transposeB ? tf.transpose(b) : b;
    return (bias ? tf.fused.matMul({ a: left, b: right, bias }) : tf.matMul(left, right)) as tf.Tensor2D;
  }
  return (
    bias ? tf.fused.matMul({ a, b, transposeA, transposeB, bias }) : tf.matMul(a, b, transposeA, transposeB)
  ) as tf.Tensor2D;
}

/** Exact GELU x Phi(x) (where engineKernelsAvailable). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('MimirGelu', { x }, {}) as tf.Tensor;
}

/** [GELU(x), Phi(x) + x phi(x)]: the value and its slope, for a backward pass dy * slope (where engineKernelsAvailable). */
export function geluWithSlope(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel('MimirGeluWithSlope', { x }, {}) as unknown as [tf.Tensor, tf.Tensor];
}

/** LayerNorm over the last axis: [y, xhat, rstd] (where engineKernelsAvailable). */
export function layerNormKernel(
  x: tf.Tensor2D,
  w: tf.Tensor1D,
  b: tf.Tensor1D,
  eps: number,
): [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D] {
  return tf.engine().runKernel('MimirLayerNorm', { x, w, b }, { eps }) as unknown as [
    tf.Tensor2D,
    tf.Tensor2D,
    tf.Tensor1D,
  ];
}

/** LayerNorm's input gradient from the forward's xhat and rstd (where engineKernelsAvailable). */
export function layerNormGradKernel(dy: tf.Tensor, xhat: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor): tf.Tensor2D {
  return tf.engine().runKernel('MimirLayerNormGrad', { dy, xhat, rstd, w }, {}) as tf.Tensor2D;
}

/** LayerNorm's weight and bias gradients, [dw, db] (where engineKernelsAvailable). */
export function layerNormParamGradsKernel(dy: tf.Tensor, xhat: tf.Tensor): [tf.Tensor1D, tf.Tensor1D] {
  return tf.engine().runKernel('MimirLayerNormParamGrads', { dy, xhat }, {}) as unknown as [tf.Tensor1D, tf.Tensor1D];
}

/** Sums over the rows of a 2-D tensor: [C] (where engineKernelsAvailable). */
export function columnSums(x: tf.Tensor2D): tf.Tensor1D {
  return tf.engine().runKernel('MimirColumnSums', { x }, {}) as tf.Tensor1D;
}

interface AttentionAttrs {
  batch: number;
  heads: number;
}

/** Attention probabilities softmax(q k^T / sqrt(d)) per sample and head, [B*H*T, T], from qkv [B*T, 3W] (wasm kernels only). */
export function attentionProbabilities(qkv: tf.Tensor2D, attrs: AttentionAttrs): tf.Tensor2D {
  return tf.engine().runKernel('MimirAttentionProbabilities', { qkv }, { ...attrs }) as tf.Tensor2D;
}

/** The heads' outputs p v, [B*T, W] (wasm kernels only). */
export function attentionApply(probabilities: tf.Tensor2D, qkv: tf.Tensor2D, attrs: AttentionAttrs): tf.Tensor2D {
  return tf.engine().runKernel('MimirAttentionApply', { probabilities, qkv }, { ...attrs }) as tf.Tensor2D;
}

/** d qkv [B*T, 3W] from the probabilities, qkv and d out [B*T, W] (wasm kernels only). */
export function attentionBackward(
  probabilities: tf.Tensor2D,
  qkv: tf.Tensor2D,
  dOut: tf.Tensor2D,
  attrs: AttentionAttrs,
): tf.Tensor2D {
  return tf.engine().runKernel('MimirAttentionBackward', { probabilities, qkv, dOut }, { ...attrs }) as tf.Tensor2D;
}

/**
 * Fused attention forward on webgpu (webgpu/attention-programs.ts): [B*T, W + H], the heads' outputs
 * in the first W columns and each (row, head)'s softmax logsumexp in the last H, for the backward.
 */
export function flashAttention(qkv: tf.Tensor2D, attrs: AttentionAttrs): tf.Tensor2D {
  return tf.engine().runKernel('MimirFlashAttention', { qkv }, { ...attrs }) as tf.Tensor2D;
}

/** d qkv [B*T, 3W] from qkv, the forward's packed output and d out [B*T, W], probabilities recomputed (webgpu). */
export function flashAttentionGrad(
  qkv: tf.Tensor2D,
  packed: tf.Tensor2D,
  dOut: tf.Tensor2D,
  attrs: AttentionAttrs,
): tf.Tensor2D {
  return tf.engine().runKernel('MimirFlashAttentionGrad', { qkv, packed, dOut }, { ...attrs }) as tf.Tensor2D;
}

/**
 * Eigendecomposition of (x + x^T) / 2 + shift 1 1^T on webgpu by parallel Jacobi in one workgroup
 * (webgpu/eigen-program.ts), n <= 512: the eigenvalues [1, n] (unsorted), the unit eigenvectors as rows
 * [n, n] in the same order (left unrotated when `vectors` is false), and the sweeps it took [1, 1].
 */
export function symmetricEigenKernel(
  x: tf.Tensor2D,
  shift: number,
  vectors: boolean,
): [values: tf.Tensor2D, vectors: tf.Tensor2D, sweeps: tf.Tensor2D] {
  return tf.engine().runKernel('MimirSymmetricEigen', { x }, { shift, vectors }) as unknown as [
    tf.Tensor2D,
    tf.Tensor2D,
    tf.Tensor2D,
  ];
}
