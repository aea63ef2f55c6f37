import * as tf from '@tensorflow/tfjs-core';
// Gradients are registered by the union package, not by tfjs-core alone.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { classificationMargin } from './losses';
import { perExampleNorm } from './geometry';
import {
  checkImages,
  idsOrDefault,
  labelsToArray,
  type AttackResult,
  type Classifier,
  type Labels,
  type ThreatModel,
} from './types';

/** Counts how often an attack queried the model, for the protocol record. */
export class QueryCounter {
  gradientCalls = 0;
  forwardCalls = 0;
}

export interface LossAndGradient {
  logits: tf.Tensor2D;
  /** Per-example loss [N]. */
  loss: tf.Tensor1D;
  /** d(sum of losses)/dx [N, H, W, C]. */
  grad: tf.Tensor4D;
}

/** Logits, per-example loss and the input gradient of the summed loss, in one forward-backward pass. */
export function lossAndGradient(
  model: Classifier,
  x: tf.Tensor4D,
  loss: (logits: tf.Tensor2D, x: tf.Tensor4D) => tf.Tensor1D,
  counter: QueryCounter,
): LossAndGradient {
  let logits: tf.Tensor2D | null = null;
  let perExample: tf.Tensor1D | null = null;
  const grad = tf.grad((xv: tf.Tensor) => {
    const z = model(xv as tf.Tensor4D);
    const l = loss(z, xv as tf.Tensor4D);
    logits = tf.keep(z);
    perExample = tf.keep(l);
    return tf.sum(l);
  })(x) as tf.Tensor4D;
  counter.gradientCalls++;
  if (logits === null || perExample === null) throw new Error('the loss function was not evaluated');
  return { logits, loss: perExample, grad };
}

export function forward(model: Classifier, x: tf.Tensor4D, counter: QueryCounter): tf.Tensor2D {
  counter.forwardCalls++;
  return tf.tidy(() => model(x));
}

export function oneHot(labels: Int32Array, classes: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32') as tf.Tensor2D);
}

export async function predictions(logits: tf.Tensor2D): Promise<Int32Array> {
  const argmax = tf.argMax(logits, 1);
  const data = (await argmax.data()) as Int32Array;
  argmax.dispose();
  return data;
}

/** The batch under attack, as every attack starts it: what `finishAttack` judges it against. */
export interface AttackStart {
  model: Classifier;
  x: tf.Tensor4D;
  y: Int32Array;
  ids: Int32Array;
  counter: QueryCounter;
  clean: { correct: boolean[]; logits: tf.Tensor2D; classes: number };
}

/**
 * What every attack does first: the labels as an array (checked against x), each example's id
 * (`ids`, or its row), a query counter, and the clean pass.
 */
export async function startAttack(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  ids: ArrayLike<number> | undefined,
): Promise<AttackStart> {
  const y = labelsToArray(labels);
  checkImages(x, y.length);
  const counter = new QueryCounter();
  return { model, x, y, ids: idsOrDefault(ids, y.length), counter, clean: await cleanCheck(model, x, y, counter) };
}

/** Clean predictions: which examples the model gets right, and the logits' class count. */
export async function cleanCheck(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Int32Array,
  counter: QueryCounter,
): Promise<{ correct: boolean[]; logits: tf.Tensor2D; classes: number }> {
  const logits = forward(model, x, counter);
  const pred = await predictions(logits);
  const classes = logits.shape[1];
  for (const label of labels) {
    if (!Number.isInteger(label) || label < 0 || label >= classes)
      throw new Error(`label ${label} is not one of ${classes} classes`);
  }
  return { correct: Array.from(labels, (label, i) => pred[i] === label), logits, classes };
}

/**
 * The per-example outcome at the final adversarial examples: one forward pass decides robustness (as
 * AutoAttack does), so the result never depends on bookkeeping inside the attack. `loss`: the
 * attack's objective at xAdv, as values or computed from xAdv and its logits; NaN where absent.
 */
export async function finishAttack(
  start: AttackStart,
  xAdv: tf.Tensor4D,
  threat: ThreatModel,
  loss?: Float32Array | ((xAdv: tf.Tensor4D, logits: tf.Tensor2D) => tf.Tensor1D),
): Promise<AttackResult> {
  const { model, x, y: labels, counter } = start;
  const cleanCorrect = start.clean.correct;
  const logits = forward(model, xAdv, counter);
  const y = oneHot(labels, logits.shape[1]);
  const [pred, margin, norm, lossValues] = await Promise.all([
    predictions(logits),
    readAndDispose(classificationMargin(logits, y)),
    readAndDispose(tf.tidy(() => perExampleNorm(tf.sub(xAdv, x), threat))),
    typeof loss === 'function' ? readAndDispose(tf.tidy(() => loss(xAdv, logits))) : Promise.resolve(loss),
  ]);
  logits.dispose();
  y.dispose();
  const robust = Array.from(labels, (label, i) => pred[i] === label);
  return {
    xAdv,
    cleanCorrect,
    robust,
    success: robust.map((r, i) => cleanCorrect[i] === true && !r),
    margin,
    loss: lossValues ?? new Float32Array(labels.length).fill(Number.NaN),
    norm,
    gradientCalls: counter.gradientCalls,
    forwardCalls: counter.forwardCalls,
  };
}

export async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  const data = Float32Array.from(await t.data());
  t.dispose();
  return data;
}

/** A boolean mask [N, 1, 1, 1] for tf.where over images. */
export function exampleMask(flags: ArrayLike<boolean | number>): tf.Tensor4D {
  const data = new Uint8Array(flags.length);
  for (let i = 0; i < flags.length; i++) data[i] = flags[i] ? 1 : 0;
  return tf.tensor4d(data, [flags.length, 1, 1, 1], 'bool');
}
