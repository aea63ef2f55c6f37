import * as tf from '@tensorflow/tfjs-core';
import { exampleMask } from './oracle';

/**
 * Per example, the best points an iterative attack has visited: the latest misclassified one (as
 * AutoAttack's x_best_adv) and the one with the highest loss (x_best).
 */
export class BestPoints {
  readonly bestLoss: Float32Array;
  /** The loss at the misclassified point kept for each example. */
  readonly advLoss: Float32Array;
  readonly found: boolean[];
  private lossPoint: tf.Tensor4D;
  private advPoint: tf.Tensor4D;

  constructor(start: tf.Tensor4D) {
    const n = start.shape[0];
    this.bestLoss = new Float32Array(n).fill(-Infinity);
    this.advLoss = new Float32Array(n).fill(Number.NaN);
    this.found = new Array<boolean>(n).fill(false);
    this.lossPoint = tf.clone(start);
    this.advPoint = tf.clone(start);
  }

  update(point: tf.Tensor4D, loss: ArrayLike<number>, wrong: ArrayLike<boolean>): void {
    const improved: boolean[] = [];
    for (let i = 0; i < loss.length; i++) {
      improved.push(loss[i] > this.bestLoss[i]);
      if (loss[i] > this.bestLoss[i]) this.bestLoss[i] = loss[i];
      if (wrong[i]) {
        this.found[i] = true;
        this.advLoss[i] = loss[i];
      }
    }
    if (improved.some(Boolean)) this.lossPoint = replaceWhere(this.lossPoint, improved, point);
    if (Array.prototype.some.call(wrong, Boolean)) this.advPoint = replaceWhere(this.advPoint, wrong, point);
  }

  /** A misclassified point where one was found, else the highest-loss point. Caller owns it. */
  choose(): { points: tf.Tensor4D; loss: Float32Array } {
    const points = replaceWhere(tf.clone(this.lossPoint), this.found, this.advPoint);
    const loss = this.bestLoss.map((l, i) => (this.found[i] ? this.advLoss[i] : l));
    return { points, loss };
  }

  dispose(): void {
    this.lossPoint.dispose();
    this.advPoint.dispose();
  }
}

/** `current` with the rows where `which` is set taken from `candidate`; disposes `current`. */
export function replaceWhere(current: tf.Tensor4D, which: ArrayLike<boolean>, candidate: tf.Tensor4D): tf.Tensor4D {
  const mask = exampleMask(which);
  const next = tf.where(mask, candidate, current);
  mask.dispose();
  current.dispose();
  return next;
}

/**
 * `full` with row rows[j] replaced by row j of `part` where take[j] is set; disposes `full`. One
 * concat and one gather, so it runs on every backend without scatter kernels.
 */
export function replaceRows(
  full: tf.Tensor4D,
  rows: ArrayLike<number>,
  part: tf.Tensor4D,
  take: ArrayLike<boolean>,
): tf.Tensor4D {
  const n = full.shape[0];
  const index = Int32Array.from({ length: n }, (_, i) => i);
  let any = false;
  for (let j = 0; j < rows.length; j++) {
    if (take[j]) {
      index[rows[j]] = n + j;
      any = true;
    }
  }
  if (!any) return full;
  const next = tf.tidy(() => tf.gather(tf.concat([full, part], 0), tf.tensor1d(index, 'int32')));
  full.dispose();
  return next;
}

/** Rows of x at the given indices (a copy when all rows are taken in order). */
export function takeRows(x: tf.Tensor4D, rows: ArrayLike<number>): tf.Tensor4D {
  let identity = rows.length === x.shape[0];
  for (let j = 0; identity && j < rows.length; j++) identity = rows[j] === j;
  if (identity) return tf.clone(x);
  return tf.tidy(() => tf.gather(x, tf.tensor1d(Int32Array.from(rows), 'int32')));
}

export function pick<T extends ArrayLike<number>>(values: T, rows: ArrayLike<number>): Int32Array {
  return Int32Array.from(rows, (r) => values[r]);
}
