import * as tf from '@tensorflow/tfjs-core';

/** The save function tf.customGrad passes after the inputs, and the checks that split the two. */
export type GradSave = (tensors: tf.Tensor[]) => void;

export function asSave(t: tf.Tensor | GradSave): GradSave {
  if (t instanceof tf.Tensor) throw new Error('expected the save function');
  return t;
}

export function savedAt(saved: tf.Tensor[], i: number): tf.Tensor {
  const t = saved[i];
  if (!t) throw new Error(`saved tensor ${i} missing`);
  return t;
}
