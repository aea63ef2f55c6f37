import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  describeLatest,
  findLatestCheckpoint,
  loadCheckpoint,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  shapesOf,
  type CheckpointInput,
} from '../../../src/engine/checkpoint';
import { readSafetensorsHeader } from '../../../src/engine/io/safetensors';
import { Rng } from '../../../src/engine/rng';
import { AdamW } from '../../../src/engine/train/optimizer';
import { CheckpointManifest } from '../../../src/shared/checkpoint';
import { useBackend } from '../../helpers/backend';

const WIDTH = 4;

/** timm-named parameters of a tiny ViT of `depth` blocks (a few of each block's tensors suffice). */
function makeParams(depth: number, rng: Rng, width = WIDTH): Map<string, tf.Variable> {
  const shapes: [string, number[]][] = [
    ['cls_token', [1, 1, width]],
    ['patch_embed.proj.weight', [12, width]],
    ['patch_embed.proj.bias', [width]],
  ];
  for (let i = 0; i < depth; i++) {
    shapes.push(
      [`blocks.${i}.norm1.weight`, [width]],
      [`blocks.${i}.attn.qkv.weight`, [width, 3 * width]],
      [`blocks.${i}.attn.qkv.bias`, [3 * width]],
    );
  }
  shapes.push(['norm.weight', [width]], ['head.weight', [width, 3]]);
  return new Map(
    shapes.map(([name, shape]) => {
      const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
      return [name, tf.variable(tf.tensor(values, shape), true)];
    }),
  );
}

function adamwFor(params: Map<string, tf.Variable>): AdamW {
  return new AdamW(params, { betas: [0.9, 0.95], weightDecay: 0.05, maxGradNorm: 1 });
}

/** `steps` optimiser steps with random gradients; cls_token gets none on the second step. */
function train(params: Map<string, tf.Variable>, optimizer: AdamW, rng: Rng, steps: number): void {
  for (let s = 0; s < steps; s++) {
    const grads = new Map<string, tf.Tensor>();
    for (const [name, variable] of params) {
      if (name === 'cls_token' && s === 1) continue;
      grads.set(
        name,
        tf.tensor(
          Array.from({ length: variable.size }, () => rng.normal()),
          variable.shape,
        ),
      );
    }
    const { gradNorm } = optimizer.applyGradients(grads, 1e-2);
    gradNorm?.dispose();
    tf.dispose([...grads.values()]);
  }
}

function disposeAll(params: Map<string, tf.Variable>, optimizer?: AdamW): void {
  optimizer?.dispose();
  for (const variable of params.values()) variable.dispose();
}

function input(params: Map<string, tf.Variable>, optimizer: AdamW | null, epoch: number, rng: Rng): CheckpointInput {
  return {
    kind: 'pretrain',
    epoch,
    step: epoch * 10,
    runConfig: { mode: 'mimir', epochs: 800, batchSize: 512 },
    modelConfig: { depth: 2, width: WIDTH },
    params,
    optimizer: optimizer ? { adamw: optimizer, lr: 1e-2, extra: { baseLr: 1.5e-4 } } : null,
    rng: { state: rng.state(), dataIterator: { order: [3, 1, 2, 0], position: 2, seed: 7 } },
    metrics: { loss: 0.5, mi: Number.NaN },
  };
}

let root = '';
let dir = '';
beforeAll(async () => {
  await useBackend('cpu');
  root = await mkdtemp(path.join(os.tmpdir(), 'mimir-checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
let caseNumber = 0;
beforeEach(async () => {
  dir = path.join(root, `case-${caseNumber++}`, 'checkpoints');
});

describe('checkpoint save and load', () => {
  let params: Map<string, tf.Variable>;
  let optimizer: AdamW;
  let rng: Rng;
  beforeEach(() => {
    rng = new Rng(11);
    params = makeParams(2, rng);
    optimizer = adamwFor(params);
    train(params, optimizer, rng, 3);
  });
  afterEach(() => disposeAll(params, optimizer));

  it('restores weights, optimizer state and RNG state exactly', async () => {
    const saved = await saveCheckpoint(dir, input(params, optimizer, 5, rng), {
      now: () => new Date('2026-01-02T03:04:05Z'),
    });
    expect(saved.path).toBe(path.join(dir, 'epoch-0005'));
    expect((await readdir(saved.path)).sort()).toEqual([
      'checkpoint.json',
      'model.safetensors',
      'optimizer.safetensors',
    ]);
    expect((await readFile(path.join(dir, 'latest'), 'utf8')).trim()).toBe('epoch-0005');

    const manifest = CheckpointManifest.parse(
      JSON.parse(await readFile(path.join(saved.path, 'checkpoint.json'), 'utf8')),
    );
    expect(manifest).toMatchObject({
      format: 'mimir-checkpoint',
      version: 1,
      kind: 'pretrain',
      epoch: 5,
      step: 50,
      createdAt: '2026-01-02T03:04:05.000Z',
      backend: 'cpu',
      metrics: { loss: 0.5, mi: null },
      optimizer: {
        name: 'adamw',
        step: 3,
        paramSteps: { cls_token: 2 },
        lr: 1e-2,
        betas: [0.9, 0.95],
        eps: 1e-8,
        weightDecay: 0.05,
        maxGradNorm: 1,
      },
    });
    for (const file of ['model.safetensors', 'optimizer.safetensors'] as const) {
      const bytes = await readFile(path.join(saved.path, file));
      expect(manifest.files[file]).toEqual({
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      });
    }
    const header = await readSafetensorsHeader(path.join(saved.path, 'model.safetensors'));
    expect([...header.entries.keys()]).toEqual([...params.keys()]); // native names, in the model's order
    expect(header.entries.get('blocks.1.attn.qkv.weight')).toMatchObject({ dtype: 'F32', shape: [WIDTH, 3 * WIDTH] });

    // A fresh model and optimiser, as a resumed process would build them.
    const other = new Rng(999);
    const resumedParams = makeParams(2, other);
    const resumed = adamwFor(resumedParams);
    const restored = await restoreCheckpoint(saved.path, resumedParams, resumed, { kind: 'pretrain' });
    for (const [name, variable] of params)
      expect([name, resumedParams.get(name)?.dataSync()]).toEqual([name, variable.dataSync()]);
    const [a, b] = [await optimizer.exportState(), await resumed.exportState()];
    expect(b).toEqual(a);
    expect(b.paramSteps?.get('cls_token')).toBe(2);

    const resumedRng = Rng.fromState(restored.rng.state);
    expect(restored.rng.dataIterator).toEqual({ order: [3, 1, 2, 0], position: 2, seed: 7 });
    expect(restored.runConfig).toEqual({ mode: 'mimir', epochs: 800, batchSize: 512 });
    expect(restored.rng.state).toEqual(rng.state());
    // Nothing drew from `rng` since the save: the resumed generator continues its stream exactly.
    expect(Array.from({ length: 5 }, () => resumedRng.uniform())).toEqual(
      Array.from({ length: 5 }, () => rng.uniform()),
    );

    // And training continues identically.
    const continueA = Rng.fromState(restored.rng.state);
    const continueB = Rng.fromState(restored.rng.state);
    train(params, optimizer, continueA, 2);
    train(resumedParams, resumed, continueB, 2);
    for (const [name, variable] of params)
      expect([name, resumedParams.get(name)?.dataSync()]).toEqual([name, variable.dataSync()]);
    disposeAll(resumedParams, resumed);
  });

  it('saves weights without an optimizer, and refuses to resume an optimizer from it', async () => {
    const saved = await saveCheckpoint(dir, input(params, null, 1, rng));
    expect((await readdir(saved.path)).sort()).toEqual(['checkpoint.json', 'model.safetensors']);
    const loaded = await loadCheckpoint(saved.path, { expectedShapes: shapesOf(params) });
    expect(loaded.optimizer).toBeNull();
    expect(loaded.weights.get('head.weight')?.data).toEqual(params.get('head.weight')?.dataSync());
    const fresh = makeParams(2, new Rng(1));
    const freshOptimizer = adamwFor(fresh);
    await expect(restoreCheckpoint(saved.path, fresh, freshOptimizer)).rejects.toThrow('has no optimizer.safetensors');
    await expect(restoreCheckpoint(saved.path, fresh, null, { kind: 'finetune' })).rejects.toThrow(
      'is a pretrain checkpoint, not a finetune one',
    );
    disposeAll(fresh, freshOptimizer);
  });

  it('detects a truncated or tampered file', async () => {
    const saved = await saveCheckpoint(dir, input(params, optimizer, 2, rng));
    const model = path.join(saved.path, 'model.safetensors');
    const original = await readFile(model);

    await truncate(model, original.length - 10);
    await expect(readCheckpoint(saved.path)).rejects.toThrow(
      `checkpoint ${saved.path}: model.safetensors is ${original.length - 10} bytes, the manifest says ${original.length} (truncated)`,
    );

    const tampered = Buffer.from(original);
    tampered[tampered.length - 1] ^= 0x01; // one bit of the last weight
    await writeFile(model, tampered);
    await expect(loadCheckpoint(saved.path)).rejects.toThrow(/model\.safetensors does not match its checksum/);

    await writeFile(model, original);
    const optimizerFile = path.join(saved.path, 'optimizer.safetensors');
    await rm(optimizerFile);
    await expect(loadCheckpoint(saved.path)).rejects.toThrow('optimizer.safetensors is missing or unreadable (ENOENT)');

    await writeFile(
      path.join(saved.path, 'checkpoint.json'),
      '{"format": "mimir-checkpoint", "version": 1, "kind": "pretrain"',
    );
    await expect(loadCheckpoint(saved.path)).rejects.toThrow('checkpoint.json is not valid JSON');
    await writeFile(
      path.join(saved.path, 'checkpoint.json'),
      JSON.stringify({ format: 'mimir-checkpoint', version: 1, kind: 'pretrain', epoch: -1 }),
    );
    await expect(loadCheckpoint(saved.path)).rejects.toThrow(/checkpoint\.json is invalid: epoch: .*>=0/);
    await writeFile(
      path.join(saved.path, 'checkpoint.json'),
      JSON.stringify({ format: 'mimir-checkpoint', version: 7 }),
    );
    await expect(loadCheckpoint(saved.path)).rejects.toThrow('format version 7 is newer than this program reads (1)');
  });

  it('names a depth or shape mismatch against the model in plain words', async () => {
    const deep = makeParams(4, new Rng(3));
    const saved = await saveCheckpoint(dir, input(deep, null, 1, rng));
    await expect(restoreCheckpoint(saved.path, params)).rejects.toThrow(
      `checkpoint ${saved.path}: model.safetensors has blocks.3.* but the config has depth 2`,
    );
    const shallow = makeParams(1, new Rng(3));
    await expect(restoreCheckpoint(saved.path, shallow)).rejects.toThrow(
      'model.safetensors has blocks.3.* but the config has depth 1',
    );
    const wide = makeParams(4, new Rng(3), 8);
    await expect(restoreCheckpoint(saved.path, wide)).rejects.toThrow(
      'model.safetensors has cls_token of shape [1, 1, 4] where the model expects [1, 1, 8], patch_embed.proj.weight of shape [12, 4] where the model expects [12, 8]',
    );
    const renamed = new Map([...deep].map(([name, v]) => [name === 'head.weight' ? 'classifier.weight' : name, v]));
    await expect(loadCheckpoint(saved.path, { expectedShapes: shapesOf(renamed) })).rejects.toThrow(
      'model.safetensors lacks classifier.weight, which the model has; model.safetensors has head.weight, which the model lacks',
    );
    // Nothing was assigned by the failed restores.
    expect(shallow.get('cls_token')?.dataSync()).toEqual(makeParamsValues(1, 3, 'cls_token'));
    disposeAll(deep);
    disposeAll(shallow);
    disposeAll(wide);
    const decoder = new Map([['decoder_blocks.0.norm1.weight', tf.variable(tf.ones([WIDTH]))]]);
    const noDecoder = await saveCheckpoint(dir, input(params, null, 9, rng));
    await expect(
      loadCheckpoint(noDecoder.path, { expectedShapes: shapesOf(new Map([...params, ...decoder])) }),
    ).rejects.toThrow('model.safetensors has no decoder_blocks.* but the config has decoder depth 1');
    disposeAll(decoder);
  });
});

function makeParamsValues(depth: number, seed: number, name: string): Float32Array {
  const params = makeParams(depth, new Rng(seed));
  const values = params.get(name)?.dataSync().slice() ?? new Float32Array();
  disposeAll(params);
  return values as Float32Array;
}

describe('finding the latest checkpoint', () => {
  let params: Map<string, tf.Variable>;
  let optimizer: AdamW;
  let rng: Rng;
  beforeEach(() => {
    rng = new Rng(5);
    params = makeParams(1, rng);
    optimizer = adamwFor(params);
    train(params, optimizer, rng, 1);
  });
  afterEach(() => disposeAll(params, optimizer));

  async function saveEpochs(epochs: number[], options = {}): Promise<void> {
    for (const epoch of epochs) await saveCheckpoint(dir, input(params, optimizer, epoch, rng), options);
  }

  it('finds nothing in a missing or empty directory', async () => {
    expect((await findLatestCheckpoint(dir)).status).toBe('none');
    await mkdir(dir, { recursive: true });
    expect(describeLatest(await findLatestCheckpoint(dir))).toBe('no checkpoint found');
  });

  it('ignores an interrupted save', async () => {
    await saveEpochs([1, 2, 3]);
    // A save killed mid-way: its temporary directory holds a partial model and no manifest.
    const interrupted = path.join(dir, `.tmp-epoch-0004-${process.pid}-0badc0de`);
    await mkdir(interrupted);
    await writeFile(path.join(interrupted, 'model.safetensors'), Buffer.alloc(100));
    const found = await findLatestCheckpoint(dir);
    expect(found).toMatchObject({
      status: 'ok',
      path: path.join(dir, 'epoch-0003'),
      ignored: [interrupted],
      problems: [],
    });
    expect(describeLatest(found)).toBe(`latest checkpoint: ${path.join(dir, 'epoch-0003')} (epoch 3, step 30)`);
  });

  it('reports a corrupt latest checkpoint and offers the previous good one, without using it', async () => {
    await saveEpochs([1, 2, 3]);
    const latestModel = path.join(dir, 'epoch-0003', 'model.safetensors');
    const bytes = await readFile(latestModel);
    await writeFile(latestModel, bytes.subarray(0, bytes.length - 4));
    const found = await findLatestCheckpoint(dir);
    expect(found.status).toBe('corrupt');
    if (found.status !== 'corrupt') return;
    expect(found.path).toBe(path.join(dir, 'epoch-0003'));
    expect(found.problem).toContain('model.safetensors is');
    expect(found.previous?.path).toBe(path.join(dir, 'epoch-0002'));
    expect(describeLatest(found)).toContain('The latest checkpoint is damaged');
    expect(describeLatest(found)).toContain(
      `The newest good one is ${path.join(dir, 'epoch-0002')} (epoch 2, step 20)`,
    );

    // A damaged manifest in the latest is reported the same way; a second damaged one is skipped too.
    await writeFile(path.join(dir, 'epoch-0003', 'checkpoint.json'), 'not json');
    await writeFile(path.join(dir, 'epoch-0002', 'optimizer.safetensors'), 'x');
    const again = await findLatestCheckpoint(dir);
    expect(again).toMatchObject({
      status: 'corrupt',
      path: path.join(dir, 'epoch-0003'),
      previous: { path: path.join(dir, 'epoch-0001') },
    });
    expect(again.problems.map((p) => p.path)).toEqual([path.join(dir, 'epoch-0002')]);
  });

  it('prefers a complete checkpoint newer than the pointer, and works without a pointer', async () => {
    await saveEpochs([1, 2, 3]);
    // A crash between renaming epoch-0003 into place and updating `latest`.
    await writeFile(path.join(dir, 'latest'), 'epoch-0002\n');
    expect(await findLatestCheckpoint(dir)).toMatchObject({ status: 'ok', path: path.join(dir, 'epoch-0003') });
    await rm(path.join(dir, 'latest'));
    expect(await findLatestCheckpoint(dir)).toMatchObject({ status: 'ok', path: path.join(dir, 'epoch-0003') });
  });

  it('keeps the last K plus every N-th and removes abandoned temporary directories', async () => {
    await mkdir(dir, { recursive: true });
    const abandoned = path.join(dir, '.tmp-epoch-0000-2147483646-deadbeef'); // a pid that does not run
    await mkdir(abandoned);
    // A `latest` pointer whose write was cut short (writeFileAtomic's temporary file).
    await writeFile(path.join(dir, '.latest.tmp-2147483646-deadbeef'), 'epoch-00');
    const removed: string[] = [];
    for (let epoch = 1; epoch <= 7; epoch++) {
      const saved = await saveCheckpoint(dir, input(params, optimizer, epoch, rng), { keepLast: 2, keepEvery: 5 });
      removed.push(...saved.removed.map((p) => path.basename(p)));
    }
    expect((await readdir(dir)).sort()).toEqual(['epoch-0005', 'epoch-0006', 'epoch-0007', 'latest']);
    expect(removed).toEqual(['epoch-0001', 'epoch-0002', 'epoch-0003', 'epoch-0004']);
  });

  it('leaves no trace of a save that fails, and replaces a checkpoint of the same name', async () => {
    await saveEpochs([1]);
    const broken = new Map(params);
    const disposed = tf.variable(tf.zeros([2]));
    disposed.dispose();
    broken.set('extra', disposed);
    await expect(saveCheckpoint(dir, input(broken, optimizer, 2, rng))).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(['epoch-0001', 'latest']);
    expect((await readFile(path.join(dir, 'latest'), 'utf8')).trim()).toBe('epoch-0001');

    train(params, optimizer, rng, 1);
    const again = await saveCheckpoint(dir, input(params, optimizer, 1, rng));
    expect((await readdir(dir)).sort()).toEqual(['epoch-0001', 'latest']);
    const loaded = await loadCheckpoint(again.path);
    expect(loaded.optimizer?.step).toBe(2);
    expect(loaded.weights.get('head.weight')?.data).toEqual(params.get('head.weight')?.dataSync());
  });
});
