import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadClassifierCheckpoint } from '../../src/engine/finetune';
import { readNpy, writeNpy } from '../../src/engine/io/npy';
import { disposeParams } from '../../src/engine/model';
import { Rng } from '../../src/engine/rng';
import { useBackend } from '../helpers/backend';
import { runMimir } from '../helpers/cli';
import { trainedClassifierCheckpoint } from '../engine/export/fixtures';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-predict-'));

describe('mimir predict', () => {
  let model: string;

  beforeAll(async () => {
    await useBackend('wasm');
    const made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, headInitStd: 1 });
    disposeParams(made.params);
    model = made.path;
  });

  it('prints and writes the logits of an NHWC batch, equal to the loaded model’s', async () => {
    const dir = tmp();
    const rng = new Rng(3);
    const images = Float32Array.from({ length: 5 * 16 * 16 * 3 }, () => rng.uniform());
    const input = path.join(dir, 'x.npy');
    const output = path.join(dir, 'logits.npy');
    await writeNpy(input, { dtype: 'float32', shape: [5, 16, 16, 3], data: images });
    const run = runMimir([
      'predict',
      '--model',
      model,
      '--input',
      input,
      '--output',
      output,
      '--json',
      '--backend',
      'wasm',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout) as {
      shape: number[];
      logits: number[][];
      predictions: number[];
      classNames: string[];
    };
    expect(printed.shape).toEqual([5, 4]);
    expect(printed.classNames).toHaveLength(4);
    const written = await readNpy(output);
    expect(written.shape).toEqual([5, 4]);
    expect(Array.from(written.data)).toEqual(printed.logits.flat().map((v) => Math.fround(v)));

    const loaded = await loadClassifierCheckpoint(model);
    const x = tf.tensor4d(images, [5, 16, 16, 3]);
    const scores = loaded.predict(x);
    const expected = Array.from(await scores.data());
    tf.dispose([x, scores]);
    loaded.dispose();
    const worst = Math.max(...printed.logits.flat().map((v, i) => Math.abs(v - (expected[i] ?? 0))));
    expect(worst).toBeLessThan(1e-5);
    printed.predictions.forEach((p, i) => {
      const row = printed.logits[i] ?? [];
      expect(row[p]).toBe(Math.max(...row));
    });

    const human = runMimir(['predict', '--model', model, '--input', input]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout.trim().split('\n')).toHaveLength(5);
  });

  it('refuses pixels outside [0, 1] and images of the wrong size', async () => {
    const dir = tmp();
    const big = path.join(dir, 'big.npy');
    await writeNpy(big, { dtype: 'float32', shape: [1, 16, 16, 3], data: new Float32Array(768).fill(200) });
    const a = runMimir(['predict', '--model', model, '--input', big, '--json']);
    expect(a.status).toBe(1);
    expect(JSON.parse(a.stdout).message).toMatch(/in \[0, 1\]/);
    const wrong = path.join(dir, 'wrong.npy');
    await writeNpy(wrong, { dtype: 'float32', shape: [1, 8, 8, 3], data: new Float32Array(192) });
    const b = runMimir(['predict', '--model', model, '--input', wrong]);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/takes \[N, 16, 16, 3\]/);
  });

  it('exits non-zero with a message when the checkpoint gives NaN scores', async () => {
    const made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, nanHead: true });
    disposeParams(made.params);
    const input = path.join(tmp(), 'x.npy');
    await writeNpy(input, { dtype: 'float32', shape: [2, 16, 16, 3], data: new Float32Array(2 * 768).fill(0.5) });
    const json = runMimir(['predict', '--model', made.path, '--input', input, '--json']);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      type: 'failed',
      message: expect.stringMatching(/score 0 for image 0 is NaN: the checkpoint .* gives non-finite logits/),
      step: null,
      lastCheckpoint: null,
    });
    const human = runMimir(['predict', '--model', made.path, '--input', input]);
    expect(human.status).toBe(1);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^mimir: the model's score 0 for image 0 is NaN/);
  });
});
