import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../../src/engine/rng';
import type { Classifier } from '../../../src/engine/attacks/types';

/** Small differentiable classifiers with known weights for the attack tests. */

export interface LinearModel {
  model: Classifier;
  /** Weights [D][C] and biases [C] as plain numbers for the float64 references. */
  w: number[][];
  b: number[];
  dispose(): void;
}

export function linearModel(w: number[][], b: number[]): LinearModel {
  const wt = tf.tensor2d(w);
  const bt = tf.tensor1d(b);
  const d = w.length;
  return {
    model: (x) => tf.tidy(() => tf.add(tf.matMul(tf.reshape(x, [x.shape[0], d]), wt), bt) as tf.Tensor2D),
    w,
    b,
    dispose: () => {
      wt.dispose();
      bt.dispose();
    },
  };
}

export function randomMatrix(rng: Rng, rows: number, cols: number, scale: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal() * scale));
}

/** Images with every pixel in [lo, hi], so small perturbations stay inside [0, 1]. */
export function randomImages(
  rng: Rng,
  n: number,
  h: number,
  w: number,
  c: number,
  lo = 0,
  hi = 1,
): { x: tf.Tensor4D; values: number[][] } {
  const values = Array.from({ length: n }, () =>
    Array.from({ length: h * w * c }, () => lo + (hi - lo) * rng.uniform()),
  );
  return { x: tf.tensor4d(values.flat(), [n, h, w, c]), values };
}

export function logitsOf(m: LinearModel, image: number[]): number[] {
  return m.b.map((bias, k) => image.reduce((acc, v, i) => acc + v * (m.w[i]?.[k] ?? 0), bias));
}

export function marginOf(logits: number[], label: number): number {
  const others = logits.filter((_, k) => k !== label);
  return (logits[label] ?? 0) - Math.max(...others);
}

/** A two-layer ReLU MLP on flattened pixels with seeded Gaussian weights. */
export function mlp(
  seed: number,
  inputs: number,
  hidden: number,
  classes: number,
): { model: Classifier; dispose(): void } {
  const rng = new Rng(seed);
  const w1 = tf.tensor2d(randomMatrix(rng, inputs, hidden, Math.sqrt(2 / inputs)));
  const b1 = tf.tensor1d(Array.from({ length: hidden }, () => rng.normal() * 0.1));
  const w2 = tf.tensor2d(randomMatrix(rng, hidden, classes, Math.sqrt(1 / hidden)));
  const b2 = tf.tensor1d(Array.from({ length: classes }, () => rng.normal() * 0.1));
  return {
    model: (x) =>
      tf.tidy(() => {
        const h = tf.relu(tf.add(tf.matMul(tf.reshape(x, [x.shape[0], inputs]), w1), b1));
        return tf.add(tf.matMul(h, w2), b2) as tf.Tensor2D;
      }),
    dispose: () => tf.dispose([w1, b1, w2, b2]),
  };
}

/** The model's own predictions as labels, so every example starts correctly classified. */
export function predictedLabels(model: Classifier, x: tf.Tensor4D): number[] {
  return tf.tidy(() => Array.from(tf.argMax(model(x), 1).dataSync()));
}

/** Per-example max |x' - x| and ||x' - x||_2, and the range of x'. */
export function perturbationStats(
  x: tf.Tensor4D,
  xAdv: tf.Tensor4D,
): { linf: number[]; l2: number[]; min: number; max: number } {
  const n = x.shape[0];
  const a = x.dataSync();
  const b = xAdv.dataSync();
  const per = a.length / n;
  const linf: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < n; i++) {
    let m = 0;
    let s = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const d = (b[j] ?? 0) - (a[j] ?? 0);
      m = Math.max(m, Math.abs(d));
      s += d * d;
    }
    linf.push(m);
    l2.push(Math.sqrt(s));
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of b) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { linf, l2, min, max };
}
