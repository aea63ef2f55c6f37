import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FinetuneRecord } from '../../../src/shared/finetune-config';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { saveCheckpoint } from '../../../src/engine/checkpoint';
import { loadClassifierCheckpoint, mergeDbatLogits } from '../../../src/engine/finetune';
import { classifierForward, disposeParams, initClassifierParams, initMaeParams } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';

const config = modelConfigFromPreset('micro', 16);
const classNames = ['a', 'b', 'c'];
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-classifier-ckpt-'));

function record(method: 'pgd-at' | 'dbat', merge: 'max' | 'logsumexp' = 'max') {
  return FinetuneRecord.parse({
    method,
    source: { kind: 'scratch', model: 'micro' },
    dataset: { kind: 'builtin', imageSize: 16, classes: 3 },
    threat: { eps: 8 },
    optimizer: { baseLr: 5e-3 },
    dbat: { merge },
    numClasses: 3,
    classNames,
  });
}

async function save(dir: string, kind: 'pretrain' | 'finetune', outputs: number, runConfig: object) {
  const params =
    kind === 'finetune'
      ? initClassifierParams(config, outputs, new Rng(1), { headInitStd: 0.5 })
      : initMaeParams(config, new Rng(1));
  const saved = await saveCheckpoint(path.join(dir, 'checkpoints'), {
    kind,
    epoch: 1,
    step: 4,
    runConfig: JSON.parse(JSON.stringify(runConfig)),
    modelConfig: JSON.parse(JSON.stringify(config)),
    params,
    rng: { state: new Rng(0).state(), dataIterator: null },
  });
  return { params, path: saved.path };
}

/** Float64 reference of the DBAT merge for one row. */
function mergeRow(row: number[], c: number, merge: 'max' | 'logsumexp'): number[] {
  return Array.from({ length: c }, (_, i) => {
    const a = row[i] ?? 0;
    const b = row[i + c] ?? 0;
    return merge === 'max'
      ? Math.max(a, b)
      : Math.max(a, b) + Math.log(Math.exp(a - Math.max(a, b)) + Math.exp(b - Math.max(a, b)));
  });
}

describe('loadClassifierCheckpoint', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('loads a run folder, its checkpoints folder or the checkpoint, with its classes and a predict that equals the forward pass', async () => {
    const dir = tmp();
    const saved = await save(dir, 'finetune', 3, record('pgd-at'));
    const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const expected = classifierForward(saved.params, config, x).logits;
    for (const where of [dir, path.join(dir, 'checkpoints'), saved.path]) {
      const model = await loadClassifierCheckpoint(where);
      expect(model.path).toBe(saved.path);
      expect(model).toMatchObject({ method: 'pgd-at', numClasses: 3, classNames, outputs: 3 });
      expect(model.modelConfig).toEqual(config);
      const scores = model.predict(x);
      expect(scores.shape).toEqual([2, 3]);
      expect(Array.from(await scores.data())).toEqual(Array.from(await expected.data()));
      scores.dispose();
      model.dispose();
    }
    tf.dispose([x, expected]);
    disposeParams(saved.params);
  });

  it('merges the 2C outputs of a DBAT head, by max (the authors code) or logsumexp', async () => {
    for (const merge of ['max', 'logsumexp'] as const) {
      const dir = tmp();
      const saved = await save(dir, 'finetune', 6, record('dbat', merge));
      const model = await loadClassifierCheckpoint(dir);
      expect(model).toMatchObject({ method: 'dbat', numClasses: 3, outputs: 6, merge });
      const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const raw = classifierForward(saved.params, config, x).logits;
      const rows = (await raw.array()) as number[][];
      const scores = (await model.predict(x).array()) as number[][];
      rows.forEach((row, i) => {
        mergeRow(row, 3, merge).forEach((v, j) => expect(scores[i]?.[j]).toBeCloseTo(v, 5));
      });
      tf.dispose([x, raw]);
      model.dispose();
      disposeParams(saved.params);
    }
  });

  it('merge is differentiable: the gradient of a merged score reaches the right output', async () => {
    const z = tf.tensor2d([[1, 5, 2, 0]]);
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.slice(mergeDbatLogits(t as tf.Tensor2D, 2, 'logsumexp'), [0, 0], [1, 1])),
    )(z);
    // d/dz0 log(e^z0 + e^z2) = softmax over {z0, z2}
    const p0 = Math.exp(1) / (Math.exp(1) + Math.exp(2));
    const values = Array.from(await g.data());
    expect(values[0]).toBeCloseTo(p0, 5);
    expect(values[2]).toBeCloseTo(1 - p0, 5);
    expect(values[1]).toBe(0);
    tf.dispose([z, g]);
  });

  it('refuses a pre-training checkpoint and a missing path, saying what to do', async () => {
    const dir = tmp();
    const saved = await save(dir, 'pretrain', 0, {});
    await expect(loadClassifierCheckpoint(dir)).rejects.toThrow(/pre-training checkpoint.*fine-tune it first/);
    await expect(loadClassifierCheckpoint(path.join(dir, 'nope'))).rejects.toThrow(/no such checkpoint or run folder/);
    disposeParams(saved.params);
  });
});
