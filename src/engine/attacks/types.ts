import * as tf from '@tensorflow/tfjs-core';
export type { ThreatModel } from '@shared/attack-config';

/**
 * Any differentiable classifier: NHWC images in [0, 1] to logits. Attacks call it inside tf.grad with
 * respect to the images, so it must be built from differentiable tfjs ops.
 */
export type Classifier = (x: tf.Tensor4D) => tf.Tensor2D;

/** Labels as a tensor or plain numbers, one per example. */
export type Labels = tf.Tensor1D | ArrayLike<number>;

export interface AttackProgress {
  attack: string;
  /** Iterations (or queries) done and planned in the current stage. */
  done: number;
  total: number;
  /** Examples the current stage still attacks. */
  active: number;
}

/** Options every attack takes. */
export interface CommonAttackOptions {
  /** Seeds every random draw; with the example ids it fixes each example's random stream. */
  seed?: number;
  /**
   * Identity of each example (e.g. its index in the evaluated split). Each example draws its randomness
   * from its own stream keyed by (seed, id), so its result does not depend on which other examples
   * share the batch. Default: 0..N-1.
   */
  ids?: ArrayLike<number>;
  onProgress?: (progress: AttackProgress) => void;
  /** Checked between iterations; an aborted attack throws the signal's reason. */
  signal?: AbortSignal;
}

/**
 * What an attack returns: the adversarial examples and, per example, the outcome at them. The caller
 * owns `xAdv` and disposes it.
 */
export interface AttackResult {
  xAdv: tf.Tensor4D;
  /** The model classifies the clean example correctly. */
  cleanCorrect: boolean[];
  /** Still correctly classified at xAdv. Examples misclassified clean are never robust. */
  robust: boolean[];
  /** The attack turned a correct prediction into a wrong one. */
  success: boolean[];
  /** z_y - max_{i != y} z_i at xAdv (negative: misclassified). */
  margin: Float32Array;
  /** The attack's own objective at xAdv (NaN where it has none, e.g. examples it did not attack). */
  loss: Float32Array;
  /** ||xAdv - x|| in the threat model's norm. */
  norm: Float32Array;
  gradientCalls: number;
  forwardCalls: number;
}

export function labelsToArray(labels: Labels): Int32Array {
  if (labels instanceof tf.Tensor) return Int32Array.from(labels.dataSync());
  return Int32Array.from(labels);
}

export function idsOrDefault(ids: ArrayLike<number> | undefined, n: number): Int32Array {
  if (ids === undefined) return Int32Array.from({ length: n }, (_, i) => i);
  if (ids.length !== n) throw new Error(`ids has ${ids.length} entries for ${n} examples`);
  return Int32Array.from(ids);
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('attack aborted');
}

export function checkImages(x: tf.Tensor4D, n: number): void {
  if (x.shape[0] !== n) throw new Error(`${x.shape[0]} images but ${n} labels`);
  if (x.dtype !== 'float32') throw new Error(`images must be float32, got ${x.dtype}`);
}
