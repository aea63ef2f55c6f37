import * as tf from '@tensorflow/tfjs-core';
import { logSoftmaxRows } from '../kernels';
import type { Classifier, ThreatModel } from '../attacks';
import { ThreatBall, steepestDirection } from '../attacks/geometry';
import { QueryCounter, lossAndGradient } from '../attacks/oracle';
import { pgdStart } from '../attacks/start';
import { exampleStreams, normalRows } from '../attacks/streams';

/**
 * The training-time adversaries. They are the attack library's PGD iteration (ThreatBall projection,
 * steepest-ascent direction, lossAndGradient, per-example random streams keyed by (seed, dataset
 * index)) without its evaluation bookkeeping: pgd() also classifies the clean batch, tracks the best
 * point and re-classifies the result, forward passes and device reads a training step does not need.
 * With `start: 'uniform'` the iterate is exactly pgd(..., { keep: 'last' })'s for the same seed and ids.
 * The model is the classifier in evaluation mode (no drop path, weights as constants).
 */

export type AdversaryStart = 'uniform' | 'normal' | 'none';

export interface AdversaryOptions {
  threat: ThreatModel;
  /** Radius and step in [0, 1] pixel units. */
  eps: number;
  alpha: number;
  steps: number;
  /**
   * 'uniform': PGD's start in the ball (Madry et al., Fast-AT); 'normal': x + 0.001 N(0, 1), not
   * projected (TRADES, MART and DBAT reference code); 'none': x.
   */
  start: AdversaryStart;
  seed: number;
  /** Dataset indices of the batch's images: each image draws its start from its own stream. */
  ids: ArrayLike<number>;
}

/** The scale of the 'normal' start (TRADES, MART and DBAT: 0.001 * randn). */
export const NORMAL_START_STD = 0.001;

function startPoint(x: tf.Tensor4D, ball: ThreatBall, options: AdversaryOptions): tf.Tensor4D {
  const streams = exampleStreams(options.seed, options.ids, 'pgd', 0);
  if (options.start === 'uniform') {
    const noise = pgdStart(streams, x.shape, options.threat, options.eps);
    const start = tf.tidy(() => ball.project(tf.add(x, noise)));
    noise.dispose();
    return start;
  }
  if (options.start === 'normal') {
    const perRow = x.shape[1] * x.shape[2] * x.shape[3];
    const values = normalRows(streams, perRow);
    for (let i = 0; i < values.length; i++) values[i] = (values[i] ?? 0) * NORMAL_START_STD;
    return tf.tidy(() => tf.add(x, tf.tensor4d(values, x.shape)) as tf.Tensor4D);
  }
  return tf.clone(x);
}

/**
 * Projected steepest ascent of a per-example objective (sum over the batch) from `start`; returns
 * the last iterate (Madry's PGD-AT trains on it). A descent (e.g. DBAT's targeted attack) is the
 * ascent of the negated objective.
 */
export function ascend(
  model: Classifier,
  x: tf.Tensor4D,
  objective: (logits: tf.Tensor2D) => tf.Tensor1D,
  options: AdversaryOptions,
): tf.Tensor4D {
  const ball = new ThreatBall(x, options.eps, options.threat);
  const counter = new QueryCounter();
  let current = startPoint(x, ball, options);
  try {
    for (let step = 0; step < options.steps; step++) {
      const g = lossAndGradient(model, current, (z) => objective(z), counter);
      const next = tf.tidy(() =>
        ball.project(tf.add(current, tf.mul(steepestDirection(g.grad, options.threat), options.alpha))),
      );
      tf.dispose([g.logits, g.loss, g.grad, current]);
      current = next;
    }
    if (options.steps === 0) {
      const projected = ball.project(current);
      current.dispose();
      current = projected;
    }
    return current;
  } catch (error) {
    current.dispose();
    throw error;
  } finally {
    ball.dispose();
  }
}

/** Cross-entropy against probability rows (one-hot or mixed): the objective of PGD-AT's attack. */
export function crossEntropyObjective(targets: tf.Tensor2D): (logits: tf.Tensor2D) => tf.Tensor1D {
  return (z) => tf.neg(tf.sum(tf.mul(targets, logSoftmaxRows(z)), 1)) as tf.Tensor1D;
}
