import * as tf from '@tensorflow/tfjs-core';
import type { ThreatModel } from './types';

/** ||d|| per example in the threat model's norm, shape [N]. */
export function perExampleNorm(d: tf.Tensor4D, threat: ThreatModel): tf.Tensor1D {
  return tf.tidy(() => {
    const flat = tf.reshape(d, [d.shape[0], -1]);
    return (threat === 'linf' ? tf.max(tf.abs(flat), 1) : tf.sqrt(tf.sum(tf.square(flat), 1))) as tf.Tensor1D;
  });
}

function asColumn(perExample: tf.Tensor1D): tf.Tensor4D {
  return tf.reshape(perExample, [perExample.shape[0], 1, 1, 1]);
}

/** d / (||d|| + 1e-12) per example (AutoAttack's `normalize`). */
export function normalizePerExample(d: tf.Tensor4D, threat: ThreatModel): tf.Tensor4D {
  return tf.tidy(() => tf.div(d, tf.add(asColumn(perExampleNorm(d, threat)), 1e-12)) as tf.Tensor4D);
}

/** The steepest-ascent direction of unit size for a gradient: sign(g) for l_inf, g / ||g||_2 for l_2. */
export function steepestDirection(g: tf.Tensor4D, threat: ThreatModel): tf.Tensor4D {
  return threat === 'linf' ? tf.sign(g) : normalizePerExample(g, 'l2');
}

/**
 * The feasible set {x' : ||x' - x|| <= eps, 0 <= x' <= 1} around clean images x, with a projection.
 * Holds tensors: dispose it when done.
 */
export class ThreatBall {
  private readonly lo: tf.Tensor4D | null;
  private readonly hi: tf.Tensor4D | null;

  constructor(
    readonly x: tf.Tensor4D,
    readonly eps: number,
    readonly threat: ThreatModel,
  ) {
    if (threat === 'linf') {
      // For x in [0, 1], clipping to the eps box and then to [0, 1] is one clip to their intersection.
      this.lo = tf.tidy(() => tf.maximum(tf.sub(x, eps), 0) as tf.Tensor4D);
      this.hi = tf.tidy(() => tf.minimum(tf.add(x, eps), 1) as tf.Tensor4D);
    } else {
      this.lo = null;
      this.hi = null;
    }
  }

  project(v: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      if (this.lo && this.hi) return tf.minimum(tf.maximum(v, this.lo), this.hi) as tf.Tensor4D;
      const d = tf.sub(v, this.x) as tf.Tensor4D;
      const n = asColumn(perExampleNorm(d, 'l2'));
      const scaled = tf.add(this.x, tf.mul(tf.div(d, tf.add(n, 1e-12)), tf.minimum(n, this.eps)));
      return tf.clipByValue(scaled, 0, 1) as tf.Tensor4D;
    });
  }

  dispose(): void {
    this.lo?.dispose();
    this.hi?.dispose();
  }
}
