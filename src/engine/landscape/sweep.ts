import * as tf from '@tensorflow/tfjs-core';
import type { ParamMap } from '../model';
import type { Direction } from './directions';

/** The value of the landscape at one point. */
export interface PointValue {
  loss: number;
  /** Share of examples classified correctly; null where the loss is not a classifier's. */
  accuracy: number | null;
}

/** Evaluates the model whose variables currently hold the perturbed weights. */
export type PointEvaluator = () => Promise<PointValue>;

export interface PointReport {
  row: number;
  col: number;
  alpha: number;
  beta: number;
  value: PointValue;
}

export interface SweepOptions {
  /** Checked before every point; the sweep stops with `LandscapeCancelledError`. */
  signal?: AbortSignal;
  onPoint?: (report: PointReport) => void;
  /** After each completed row (beta), 0-based. */
  onRow?: (row: number) => void;
}

export class LandscapeCancelledError extends Error {
  constructor() {
    super('The landscape was cancelled.');
    this.name = 'LandscapeCancelledError';
  }
}

interface Moved {
  variable: tf.Variable;
  origin: tf.Tensor;
  d1: tf.Tensor | null;
  d2: tf.Tensor | null;
}

/**
 * Evaluate `evaluate` at theta* + alpha d1 + beta d2 for every beta (rows) and alpha (columns), with
 * the perturbed weights assigned in place to the model's variables: nothing is rebuilt and the
 * caller's input tensors are reused at every point. Parameters whose two directions are zero are
 * never touched. The variables get their original tensors back afterwards (bitwise: the kept
 * origin is a reference to the same data), also after a cancel or an error.
 */
export async function sweepPlane(
  params: ParamMap,
  directions: readonly [Direction, Direction],
  alphas: readonly number[],
  betas: readonly number[],
  evaluate: PointEvaluator,
  options: SweepOptions = {},
): Promise<PointValue[][]> {
  const [dir1, dir2] = directions;
  for (const name of [...dir1.keys(), ...dir2.keys()]) {
    if (!params.has(name)) throw new Error(`the direction has "${name}", which the model lacks`);
  }
  const moved: Moved[] = [];
  const upload = (values: Float32Array | null | undefined, variable: tf.Variable): tf.Tensor | null => {
    if (!values) return null;
    if (values.length !== variable.size) {
      throw new Error(`a direction for [${variable.shape}] has ${values.length} values`);
    }
    return tf.tensor(values, variable.shape, 'float32');
  };
  try {
    for (const [name, variable] of params) {
      const d1 = upload(dir1.get(name), variable);
      let d2: tf.Tensor | null;
      try {
        d2 = upload(dir2.get(name), variable);
      } catch (error) {
        d1?.dispose();
        throw error;
      }
      if (d1 === null && d2 === null) continue;
      moved.push({ variable, origin: tf.clone(variable), d1, d2 });
    }
    const grid: PointValue[][] = [];
    for (let row = 0; row < betas.length; row++) {
      const beta = betas[row] ?? 0;
      const values: PointValue[] = [];
      for (let col = 0; col < alphas.length; col++) {
        if (options.signal?.aborted) throw new LandscapeCancelledError();
        const alpha = alphas[col] ?? 0;
        for (const m of moved) assignPoint(m, alpha, beta);
        const value = await evaluate();
        values.push(value);
        options.onPoint?.({ row, col, alpha, beta, value });
      }
      grid.push(values);
      options.onRow?.(row);
    }
    return grid;
  } finally {
    for (const m of moved) {
      m.variable.assign(m.origin);
      tf.dispose([m.origin, m.d1, m.d2].filter((t): t is tf.Tensor => t !== null));
    }
  }
}

function assignPoint(m: Moved, alpha: number, beta: number): void {
  const next = tf.tidy(() => {
    let step: tf.Tensor | null = null;
    if (m.d1 && alpha !== 0) step = tf.mul(m.d1, alpha);
    if (m.d2 && beta !== 0) step = step ? tf.add(step, tf.mul(m.d2, beta)) : tf.mul(m.d2, beta);
    // At alpha = beta = 0 the variable gets the origin itself: the centre is the checkpoint exactly.
    return step ? tf.add(m.origin, step) : tf.clone(m.origin);
  });
  m.variable.assign(next);
  next.dispose();
}
