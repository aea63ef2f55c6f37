import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classificationMargin,
  crossEntropyLoss,
  dlrLoss,
  dlrTargetedLoss,
  marginLoss,
} from '../../../src/engine/attacks/losses';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';

/** float64 references straight from the definitions (Croce & Hein 2020; AutoAttack's dlr_loss). */
function sortedDesc(z: number[]): number[] {
  return [...z].sort((a, b) => b - a);
}
function refCe(z: number[], y: number): number {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((acc, v) => acc + Math.exp(v - m), 0));
  return lse - (z[y] ?? 0);
}
function bestOther(z: number[], y: number): number {
  return Math.max(...z.filter((_, i) => i !== y));
}
function refMargin(z: number[], y: number): number {
  return bestOther(z, y) - (z[y] ?? 0);
}
function refDlr(z: number[], y: number): number {
  const s = sortedDesc(z);
  return -((z[y] ?? 0) - bestOther(z, y)) / ((s[0] ?? 0) - (s[2] ?? 0) + 1e-12);
}
function refDlrT(z: number[], y: number, t: number): number {
  const s = sortedDesc(z);
  return -((z[y] ?? 0) - (z[t] ?? 0)) / ((s[0] ?? 0) - ((s[2] ?? 0) + (s[3] ?? 0)) / 2 + 1e-12);
}

describe.each(['cpu', 'wasm'] as const)('attack losses on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  const rng = new Rng(5);
  const n = 6;
  const classes = 7;
  const logits = Array.from({ length: n }, () => Array.from({ length: classes }, () => rng.normal() * 2));
  const labels = logits.map((z, i) => (i % 2 === 0 ? z.indexOf(Math.max(...z)) : (i * 3) % classes));
  const targets = labels.map((y) => (y + 2) % classes);

  const cases = [
    ['cross-entropy', (z: tf.Tensor2D, y: tf.Tensor2D) => crossEntropyLoss(z, y), refCe],
    ['CW margin', (z: tf.Tensor2D, y: tf.Tensor2D) => marginLoss(z, y), refMargin],
    ['DLR', (z: tf.Tensor2D, y: tf.Tensor2D) => dlrLoss(z, y), refDlr],
    [
      'targeted DLR',
      (z: tf.Tensor2D, y: tf.Tensor2D, t?: tf.Tensor2D) => dlrTargetedLoss(z, y, t ?? y),
      (z: number[], y: number, i: number) => refDlrT(z, y, targets[i] ?? 0),
    ],
  ] as const;

  for (const [name, lossFn, reference] of cases) {
    it(`${name}: values match float64 and gradients match finite differences`, () => {
      const y = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32') as tf.Tensor2D;
      const t = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), classes), 'float32') as tf.Tensor2D;
      const z = tf.tensor2d(logits);
      const values = tf.tidy(() => lossFn(z, y, t).arraySync());
      values.forEach((v, i) => expect(v).toBeCloseTo(reference(logits[i] ?? [], labels[i] ?? 0, i), 4));
      const grad = tf
        .grad((zz: tf.Tensor) => tf.sum(lossFn(zz as tf.Tensor2D, y, t)))(z)
        .arraySync() as number[][];
      const h = 1e-4;
      logits.forEach((row, i) => {
        row.forEach((_, k) => {
          const up = [...row];
          const down = [...row];
          up[k] = (up[k] ?? 0) + h;
          down[k] = (down[k] ?? 0) - h;
          const fd = (reference(up, labels[i] ?? 0, i) - reference(down, labels[i] ?? 0, i)) / (2 * h);
          expect(grad[i]?.[k]).toBeCloseTo(fd, 2);
        });
      });
      tf.dispose([y, t, z]);
    });
  }

  it('the classification margin is z_y - max_{i != y} z_i', () => {
    const y = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32') as tf.Tensor2D;
    const z = tf.tensor2d(logits);
    const m = classificationMargin(z, y).arraySync();
    m.forEach((v, i) => expect(v).toBeCloseTo(-refMargin(logits[i] ?? [], labels[i] ?? 0), 5));
    tf.dispose([y, z]);
  });
});
