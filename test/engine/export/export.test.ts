import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  convToPatchWeight,
  exportCheckpoint,
  fromTorchLayout,
  importCheckpoint,
  importToCheckpoint,
  patchWeightToConv,
  posEmbedTensor,
  toTorchLayout,
  type Weights,
} from '../../../src/engine/export';
import { loadClassifierCheckpoint } from '../../../src/engine/finetune';
import { writeNpy } from '../../../src/engine/io/npy';
import { readSafetensors } from '../../../src/engine/io/safetensors';
import { classifierForward, disposeParams, type ParamMap } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { findPythonWithTorch, runPython } from '../io/python-torch';
import { MICRO, maeCheckpoint, trainedClassifierCheckpoint } from './fixtures';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-export-'));

async function nativeWeights(params: ParamMap): Promise<Weights> {
  const out: Weights = new Map();
  for (const [name, v] of params) out.set(name, { shape: [...v.shape], data: Float32Array.from(await v.data()) });
  return out;
}

function expectSameWeights(actual: Weights, expected: Weights): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, w] of expected) {
    const a = actual.get(name);
    expect(a?.shape, name).toEqual(w.shape);
    // Bit-exact: a round trip only moves values.
    expect(Buffer.from((a?.data ?? new Float32Array()).buffer).equals(Buffer.from(w.data.buffer)), name).toBe(true);
  }
}

describe('export and import (timm / MAE names)', () => {
  let classifier: { path: string; params: ParamMap };
  let mae: { path: string; params: ParamMap };

  beforeAll(async () => {
    await useBackend('cpu');
    classifier = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0 });
    mae = await maeCheckpoint(tmp());
  });
  afterAll(() => {
    disposeParams(classifier.params);
    disposeParams(mae.params);
  });

  it('maps the linear patch embedding to the conv kernel [D, C, p, p] that computes the same outputs', () => {
    const [p, c, d] = [3, 2, 5];
    const rng = new Rng(4);
    const native = { shape: [p * p * c, d], data: Float32Array.from({ length: p * p * c * d }, () => rng.normal()) };
    const conv = patchWeightToConv(native, p, c);
    expect(conv.shape).toEqual([d, c, p, p]);
    const patch = Array.from({ length: p * p * c }, () => rng.normal()); // (i, j, channel), channel fastest
    for (let o = 0; o < d; o++) {
      let linear = 0;
      let convolved = 0;
      for (let i = 0; i < p * p * c; i++) linear += (patch[i] ?? 0) * (native.data[i * d + o] ?? 0);
      for (let ch = 0; ch < c; ch++)
        for (let i = 0; i < p; i++)
          for (let j = 0; j < p; j++)
            convolved += (conv.data[((o * c + ch) * p + i) * p + j] ?? 0) * (patch[(i * p + j) * c + ch] ?? 0);
      expect(convolved).toBeCloseTo(linear, 10);
    }
    expect(Array.from(convToPatchWeight(conv).data)).toEqual(Array.from(native.data));
  });

  it('writes timm names and layouts with a config of timm model args, and imports them back exactly', async () => {
    const dir = tmp();
    const file = path.join(dir, 'vit.safetensors');
    const result = await exportCheckpoint(path.dirname(path.dirname(classifier.path)), file, { naming: 'timm' });
    expect(result.configFile).toBe(path.join(dir, 'vit.json'));
    const config = JSON.parse(readFileSync(result.configFile, 'utf8')) as Record<string, unknown>;
    expect(config.model_args).toEqual({
      img_size: 16,
      patch_size: 4,
      in_chans: 3,
      embed_dim: 32,
      depth: 2,
      num_heads: 2,
      mlp_ratio: 4,
      num_classes: 4,
      global_pool: 'avg',
      class_token: true,
      fc_norm: true,
      qkv_bias: true,
    });
    const read = await readSafetensors(file);
    const shapes = Object.fromEntries([...read.tensors].map(([n, t]) => [n, t.shape]));
    expect(shapes['patch_embed.proj.weight']).toEqual([32, 3, 4, 4]);
    expect(shapes.pos_embed).toEqual([1, 17, 32]);
    expect(shapes.cls_token).toEqual([1, 1, 32]);
    expect(shapes['blocks.1.attn.qkv.weight']).toEqual([96, 32]);
    expect(shapes['blocks.0.mlp.fc1.weight']).toEqual([128, 32]);
    expect(shapes['head.weight']).toEqual([4, 32]);
    expect(shapes['fc_norm.weight']).toEqual([32]);
    expect('norm.weight' in shapes).toBe(false);
    expect(read.metadata.format).toBe('pt');

    const imported = await importCheckpoint(file);
    expect(imported.kind).toBe('finetune');
    expect(imported.modelConfig).toEqual(MICRO);
    expect(imported.classNames).toHaveLength(4);
    expectSameWeights(imported.weights, await nativeWeights(classifier.params));

    // ...and as a checkpoint the loader evaluates with the original predictions.
    const out = tmp();
    await importToCheckpoint(file, out);
    const model = await loadClassifierCheckpoint(out);
    const x = tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const before = classifierForward(classifier.params, MICRO, x).logits;
    const after = model.predict(x);
    expect(Array.from(await after.data())).toEqual(Array.from(await before.data()));
    tf.dispose([x, before, after]);
    model.dispose();
  });

  it('round-trips native naming exactly, and pre-training checkpoints with and without the decoder', async () => {
    const dir = tmp();
    const nativeFile = path.join(dir, 'native.safetensors');
    await exportCheckpoint(classifier.path, nativeFile, { naming: 'native' });
    expectSameWeights((await importCheckpoint(nativeFile)).weights, await nativeWeights(classifier.params));

    const encoderFile = path.join(dir, 'encoder.safetensors');
    const encoder = await exportCheckpoint(mae.path, encoderFile);
    expect(encoder.tensors).toContain('norm.weight');
    expect(encoder.tensors).toContain('pos_embed');
    expect(encoder.tensors.some((n) => n.startsWith('decoder') || n === 'mask_token')).toBe(false);
    expect(encoder.config.model_args).toMatchObject({ num_classes: 0, global_pool: 'token', fc_norm: false });
    await expect(importCheckpoint(encoderFile)).rejects.toThrow(/only an encoder/);

    const fullFile = path.join(dir, 'mae.safetensors');
    const full = await exportCheckpoint(mae.path, fullFile, { decoder: true });
    expect(full.tensors).toContain('decoder_pos_embed');
    const read = await readSafetensors(fullFile);
    expect(read.tensors.get('decoder_pred.weight')?.shape).toEqual([48, 32]);
    expect(read.tensors.get('decoder_pos_embed')?.shape).toEqual([1, 17, 32]);
    const back = await importCheckpoint(fullFile);
    expect(back.kind).toBe('pretrain');
    expectSameWeights(back.weights, await nativeWeights(mae.params));
  });

  it('never replaces a file beside the export (the config JSON) unless told to overwrite', async () => {
    const dir = tmp();
    const project = path.join(dir, 'package.json');
    writeFileSync(project, '{"name": "a user project"}\n');
    const file = path.join(dir, 'package.safetensors');
    await expect(exportCheckpoint(classifier.path, file)).rejects.toThrow(
      `${project} exists: an export writes package.safetensors and package.json beside it`,
    );
    expect(readFileSync(project, 'utf8')).toBe('{"name": "a user project"}\n');
    expect(existsSync(file)).toBe(false); // checked before writing anything

    // The weights file alone is also kept, and both are named when both exist.
    const other = path.join(dir, 'other.safetensors');
    writeFileSync(other, 'not mine to replace');
    await expect(exportCheckpoint(classifier.path, other)).rejects.toThrow(`${other} exists`);
    expect(readFileSync(other, 'utf8')).toBe('not mine to replace');
    expect(existsSync(path.join(dir, 'other.json'))).toBe(false);

    await exportCheckpoint(classifier.path, file, { overwrite: true });
    expect(JSON.parse(readFileSync(project, 'utf8'))).toMatchObject({ format: expect.any(String), naming: 'timm' });
    await expect(exportCheckpoint(classifier.path, file)).rejects.toThrow(`${file} exists; ${project} exists:`);
    // No temporary file is left beside the targets.
    expect(readdirSync(dir).sort()).toEqual(['other.safetensors', 'package.json', 'package.safetensors']);
  });

  it('import refuses a named pipe or a folder for the config or the weights without waiting on it', async () => {
    const dir = tmp();
    const file = path.join(dir, 'vit.safetensors');
    await exportCheckpoint(classifier.path, file);
    const fifo = path.join(dir, 'pipe.json');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    await expect(importCheckpoint(file, { config: fifo })).rejects.toThrow(
      `${fifo}: cannot read the model config (${fifo} is a named pipe; only regular files are read.)`,
    );
    mkdirSync(path.join(dir, 'folder.safetensors'));
    copyFileSync(path.join(dir, 'vit.json'), path.join(dir, 'folder.json'));
    await expect(importCheckpoint(path.join(dir, 'folder.safetensors'))).rejects.toThrow(
      `${path.join(dir, 'folder.safetensors')} is a folder; only regular files are read.`,
    );
  });

  it('refuses learned position embeddings, missing and unknown tensors', async () => {
    const timm = toTorchLayout(await nativeWeights(classifier.params), 'finetune', MICRO, 4);
    const learned: Weights = new Map(timm);
    const pos = posEmbedTensor(32, MICRO);
    learned.set('pos_embed', { shape: pos.shape, data: pos.data.map((v) => v + 0.01) });
    expect(() => fromTorchLayout(learned, 'finetune', MICRO, 4)).toThrow(/learned position embeddings/);
    const missing: Weights = new Map(timm);
    missing.delete('fc_norm.bias');
    expect(() => fromTorchLayout(missing, 'finetune', MICRO, 4)).toThrow(/lacks "fc_norm.bias"/);
    const extra: Weights = new Map(timm);
    extra.set('norm.weight', { shape: [32], data: new Float32Array(32) });
    expect(() => fromTorchLayout(extra, 'finetune', MICRO, 4)).toThrow(/norm.weight/);
  });

  it('a PyTorch ViT with timm module names loads the export strictly and gives the same logits', async (context) => {
    const { python, reason } = findPythonWithTorch();
    if (!python) {
      console.log(`skipped: ${reason}`);
      context.skip();
      return;
    }
    const trained = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, seed: 3, headInitStd: 1 });
    const dir = tmp();
    const file = path.join(dir, 'vit.safetensors');
    const exported = await exportCheckpoint(trained.path, file);
    const rng = new Rng(9);
    const images = Float32Array.from({ length: 5 * 16 * 16 * 3 }, () => rng.uniform());
    const input = path.join(dir, 'x.npy');
    await writeNpy(input, { dtype: 'float32', shape: [5, 16, 16, 3], data: images });
    const x = tf.tensor4d(images, [5, 16, 16, 3]);
    const ours = classifierForward(trained.params, MICRO, x).logits;
    const expected = Array.from(await ours.data());
    tf.dispose([x, ours]);
    disposeParams(trained.params);
    const torchOut = runPython<{ ok: boolean; logits: number[][]; keys: number }>(python, [
      path.join(here, 'timm_vit.py'),
      exported.configFile,
      file,
      input,
    ]);
    expect(torchOut.keys).toBe(exported.tensors.length);
    const theirs = torchOut.logits.flat();
    expect(theirs).toHaveLength(expected.length);
    const worst = Math.max(...theirs.map((v, i) => Math.abs(v - (expected[i] ?? 0))));
    const scale = Math.max(...expected.map(Math.abs));
    console.log(
      `PyTorch (${python.torch}) vs engine logits: max |diff| ${worst.toExponential(2)} (logits up to ${scale.toFixed(3)})`,
    );
    expect(worst).toBeLessThan(1e-4);
    expect(existsSync(file)).toBe(true);
  });
});
