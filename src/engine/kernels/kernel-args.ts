import type * as tf from '@tensorflow/tfjs-core';

/** The input checks the wasm kernels and the WGSL kernels (webgpu/kernels.ts) share. */

/** A 2-D float32 tensor's [rows, cols]. */
export function dims2(t: tf.TensorInfo, what: string): [number, number] {
  const [r, c] = t.shape;
  if (t.shape.length !== 2 || r === undefined || c === undefined) throw new Error(`${what} must be 2-D`);
  if (t.dtype !== 'float32') throw new Error(`${what} must be float32`);
  return [r, c];
}

/** op(a) [m, k] @ op(b) [k, n] (+ bias [n]); aCols and bCols are a's and b's row strides. */
export interface GemmShape {
  m: number;
  n: number;
  k: number;
  aCols: number;
  bCols: number;
}

export function gemmShape(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  bias: tf.TensorInfo | undefined,
  transA: boolean,
  transB: boolean,
): GemmShape {
  const [ar, ac] = dims2(a, 'a');
  const [br, bc] = dims2(b, 'b');
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [kb, n] = transB ? [bc, br] : [br, bc];
  if (k !== kb) throw new Error(`gemm: inner dimensions ${k} and ${kb} differ`);
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== n)) throw new Error(`gemm: bias must be [${n}]`);
  return { m, n, k, aCols: ac, bCols: bc };
}
