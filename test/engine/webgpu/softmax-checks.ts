import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { logSoftmaxRows, softmaxRows } from '../../../src/engine/kernels';
import { Rng } from '../model/fixtures';
import { read } from './webgpu-checks';

// The float64 checks of the engine's softmax kernels, shared by the adapters they run on (SwiftShader, lavapipe).

/** Row lengths below, at and past the 64-thread row, and SwiftShader's 4-wide subgroups. */
export const SOFTMAX_ROW_LENGTHS = [1, 7, 64, 65, 257, 1000];
const ROWS = 6;

/**
 * Logits [2, 3, cols] (six rows): two rows in [-4, 4], two in [-80, 80], two in [96, 104] where a
 * naive exp overflows float32; all float32-exact. dy uniform in [-1, 1].
 */
function inputs(cols: number): { x: Float64Array; dy: Float64Array } {
  const rng = new Rng(cols);
  const x = new Float64Array(ROWS * cols);
  const dy = new Float64Array(ROWS * cols);
  for (let i = 0; i < x.length; i++) {
    const row = Math.floor(i / cols);
    const u = rng.uniform() * 2 - 1;
    x[i] = Math.fround(row < 2 ? 4 * u : row < 4 ? 80 * u : 100 + 4 * u);
    dy[i] = Math.fround(rng.uniform() * 2 - 1);
  }
  return { x, dy };
}

interface Reference {
  softmax: Float64Array;
  logSoftmax: Float64Array;
  softmaxGrad: Float64Array;
  logSoftmaxGrad: Float64Array;
  /** Per row, the size of the terms each gradient formula subtracts (its error scale). */
  softmaxGradScale: Float64Array;
  logSoftmaxGradScale: Float64Array;
}

/** Softmax, log-softmax and their input gradients for dy, in float64. */
function reference(x: Float64Array, dy: Float64Array, cols: number): Reference {
  const n = x.length;
  const out = {
    softmax: new Float64Array(n),
    logSoftmax: new Float64Array(n),
    softmaxGrad: new Float64Array(n),
    logSoftmaxGrad: new Float64Array(n),
    softmaxGradScale: new Float64Array(ROWS),
    logSoftmaxGradScale: new Float64Array(ROWS),
  };
  for (let r = 0; r < ROWS; r++) {
    const xs = x.subarray(r * cols, (r + 1) * cols);
    const ds = dy.subarray(r * cols, (r + 1) * cols);
    const m = Math.max(...xs);
    const total = xs.reduce((s, v) => s + Math.exp(v - m), 0);
    const p = Array.from(xs, (v) => Math.exp(v - m) / total);
    const dyDotP = p.reduce((s, v, i) => s + v * (ds[i] ?? 0), 0);
    const dySum = ds.reduce((s, v) => s + v, 0);
    const maxDy = Math.max(...Array.from(ds, Math.abs));
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const pc = p[c] ?? 0;
      out.softmax[i] = pc;
      out.logSoftmax[i] = (x[i] ?? 0) - m - Math.log(total);
      out.softmaxGrad[i] = pc * ((dy[i] ?? 0) - dyDotP);
      out.logSoftmaxGrad[i] = (dy[i] ?? 0) - pc * dySum;
    }
    out.softmaxGradScale[r] = Math.max(...p) * 2 * maxDy;
    out.logSoftmaxGradScale[r] = maxDy + Math.max(...p) * Math.abs(dySum);
  }
  return out;
}

/** Worst over rows of max |got - want| in the row / the row's scale (its largest |want| unless given). */
function rowError(got: Float32Array | undefined, want: Float64Array, cols: number, scales?: Float64Array): number {
  let worst = 0;
  for (let r = 0; r < ROWS; r++) {
    let err = 0;
    let scale = scales?.[r] ?? 0;
    for (let c = r * cols; c < (r + 1) * cols; c++) {
      err = Math.max(err, Math.abs((got?.[c] ?? NaN) - (want[c] ?? 0)));
      if (!scales) scale = Math.max(scale, Math.abs(want[c] ?? 0));
    }
    worst = Math.max(worst, Number.isNaN(err) ? Infinity : err / Math.max(scale, 1e-30));
  }
  return worst;
}

/** The engine's softmax and log-softmax of x [2, 3, cols] and their gradients for dy, through tf.grad. */
async function runSoftmaxes(x: Float64Array, dy: Float64Array, cols: number): Promise<Float32Array[]> {
  const shape: [number, number, number] = [2, 3, cols];
  const tx = tf.tensor3d(Float32Array.from(x), shape);
  const tdy = tf.tensor3d(Float32Array.from(dy), shape);
  const outputs = [
    softmaxRows(tx),
    logSoftmaxRows(tx),
    tf.grad((t: tf.Tensor) => softmaxRows(t))(tx, tdy),
    tf.grad((t: tf.Tensor) => logSoftmaxRows(t))(tx, tdy),
  ];
  for (const t of outputs) expect(t.shape).toEqual(shape);
  return (await read([...outputs, tx, tdy])).slice(0, 4);
}

const SOFTMAX_SHADERS = ['mimirLogSoftmax', 'mimirLogSoftmaxGrad', 'mimirSoftmax', 'mimirSoftmaxGrad'];

/** The shader keys softmax, log-softmax and their gradients dispatch in a variant, sorted. */
export const softmaxShaders = (subgroups: boolean) =>
  SOFTMAX_SHADERS.map((k) => (subgroups ? `${k}_subgroups` : k)).sort();

/** Runs the four once on a small input. */
export async function runSmallSoftmaxes(): Promise<void> {
  const { x, dy } = inputs(5);
  await runSoftmaxes(x, dy, 5);
}

/**
 * Softmax, log-softmax and their gradients of six rows of length `cols` against float64, each within
 * 1e-5 of its row's scale; returns the worst errors.
 */
export async function checkSoftmax(cols: number): Promise<Record<string, number>> {
  const { x, dy } = inputs(cols);
  const [y, logY, dx, dxLog] = await runSoftmaxes(x, dy, cols);
  const want = reference(x, dy, cols);
  const errors = {
    softmax: rowError(y, want.softmax, cols),
    logSoftmax: rowError(logY, want.logSoftmax, cols),
    softmaxGrad: rowError(dx, want.softmaxGrad, cols, want.softmaxGradScale),
    logSoftmaxGrad: rowError(dxLog, want.logSoftmaxGrad, cols, want.logSoftmaxGradScale),
  };
  for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-5);
  return errors;
}
