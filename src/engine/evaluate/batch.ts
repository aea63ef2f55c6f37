import * as tf from '@tensorflow/tfjs-core';
import { autoAttack, runAttack, type RunAttackExtras } from '../attacks';
import type { EvaluatedClassifier } from './model';
import type { AttackTally } from './tally';

/** One batch of evaluated examples, as every planned attack sees it. */
export interface BatchContext {
  model: EvaluatedClassifier;
  x: tf.Tensor4D;
  labels: Int32Array;
  /** The examples' ids in the split (what attacks key their randomness by). */
  ids: number[];
  cleanPred: Int32Array;
  cleanCorrect: boolean[];
  /** The request's batch size (AutoAttack splits by it). */
  batchSize: number;
  signal: AbortSignal | undefined;
}

/** What an attack returned for a batch. */
interface Attacked {
  xAdv: tf.Tensor4D;
  cleanCorrect: boolean[];
  robust: boolean[];
  robustWithinEps: boolean[] | undefined;
  margin: Float32Array;
  norm: Float32Array;
}

/** Run one planned attack on a batch and add its outcome (and flipped examples' images) to the tally. */
export async function runPlanned(tally: AttackTally, batch: BatchContext): Promise<void> {
  const { model, x, labels, ids, cleanPred, cleanCorrect, batchSize, signal } = batch;
  const planned = tally.planned;
  if (planned.kind === 'natural') {
    tally.addBatch({
      ids,
      labels,
      cleanPred,
      advPred: cleanPred,
      cleanCorrect,
      robust: cleanCorrect,
      margin: new Float32Array(ids.length).fill(Number.NaN),
      norm: new Float32Array(ids.length),
    });
    tally.forwardCalls += 1;
    return;
  }
  let xAdv: tf.Tensor4D;
  if (planned.kind === 'autoattack') {
    const result = await autoAttack(model.classify, x, labels, planned.spec, { ids, batchSize, signal });
    xAdv = result.xAdv;
    tally.addStages(result.stages, ids.length);
    tally.brokenBy.push(...result.brokenBy);
    for (const d of result.deviations) tally.deviations.add(d);
    tally.gradientCalls += result.gradientCalls;
    tally.forwardCalls += result.forwardCalls;
    await addAttacked(tally, batch, { ...result, robustWithinEps: undefined });
  } else {
    const extras: RunAttackExtras = { ids, signal, features: model.features };
    if (planned.mi) {
      const block = planned.spec.attack === 'pgd-mi' ? planned.spec.block : undefined;
      extras.mi = model.featureMi(planned.mi, {}, block);
    }
    const result = await runAttack(model.classify, x, labels, planned.spec, extras);
    xAdv = result.xAdv;
    tally.gradientCalls += result.gradientCalls;
    tally.forwardCalls += result.forwardCalls;
    const within = planned.withinEps && 'robustWithinEps' in result ? result.robustWithinEps : undefined;
    await addAttacked(tally, batch, { ...result, robustWithinEps: within });
  }
  xAdv.dispose();
}

/** The attack's outcome on the batch into the tally, with the images of the examples it wants kept. */
async function addAttacked(tally: AttackTally, batch: BatchContext, attacked: Attacked): Promise<void> {
  const { model, x, labels, ids, cleanPred } = batch;
  const { xAdv, cleanCorrect, robust, robustWithinEps } = attacked;
  const advPred = await predictionsAt(model, xAdv);
  tally.forwardCalls += 1;
  const wanted = tally.addBatch({
    ids,
    labels,
    cleanPred,
    advPred,
    cleanCorrect,
    robust,
    robustWithinEps,
    margin: attacked.margin,
    norm: attacked.norm,
  });
  if (wanted.length === 0) return;
  const rows = tf.tensor1d(Int32Array.from(wanted), 'int32');
  const [clean, adversarial] = tf.tidy(() => [tf.gather(x, rows), tf.gather(xAdv, rows)]);
  const [cleanData, advData] = await Promise.all([clean.data(), adversarial.data()]);
  tf.dispose([rows, clean, adversarial]);
  const pixels = x.shape[1] * x.shape[2] * x.shape[3];
  wanted.forEach((row, j) => {
    tally.samples.push({
      index: ids[row] ?? 0,
      clean: Float32Array.from(cleanData.subarray(j * pixels, (j + 1) * pixels)),
      adversarial: Float32Array.from(advData.subarray(j * pixels, (j + 1) * pixels)),
    });
  });
}

async function argmaxOf(logits: tf.Tensor2D): Promise<Int32Array> {
  const a = tf.argMax(logits, 1);
  const data = (await a.data()) as Int32Array;
  a.dispose();
  return data;
}

export async function predictionsAt(model: EvaluatedClassifier, x: tf.Tensor4D): Promise<Int32Array> {
  const logits = tf.tidy(() => model.classify(x));
  const pred = await argmaxOf(logits);
  logits.dispose();
  return pred;
}
