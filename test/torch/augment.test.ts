import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuiltinDataset } from '../../src/engine/data';
import type { ExampleBatch } from '../../src/engine/data/dataset';
import { RAND_AUGMENT_OPS, applyOp, mixBatch, opMagnitude, randAugmentBatch } from '../../src/engine/finetune/augment';
import { decodeSafetensors, encodeSafetensors } from '../../src/engine/io/safetensors';
import { Rng } from '../../src/engine/rng';
import { MixupConfig, RandAugmentConfig } from '../../src/shared/finetune-config';
import { findPythonWithTorch, runPython, type PythonWithTorch } from '../engine/io/python-torch';
import { events, runMimir } from '../helpers/cli';
import { PYTHON_DIR } from './golden';

/**
 * RandAugment and MixUp/CutMix on the PyTorch engine (python/mimir_torch/data/augment.py) give the
 * tfjs engine's batch (src/engine/finetune/augment.ts) for the same Rng seed: the same ops drawn, the
 * same pixels (float32, within 1 ulp), the same soft targets, dominant labels and lambda. Every one
 * of the 14 ops is compared on its own with both signs, then whole batches for several seeds.
 */

const N = 8;
const SIZE = 16;

function ulps(a: number, b: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat32(0, a);
  view.setFloat32(4, b);
  return Math.abs(view.getInt32(0) - view.getInt32(4));
}

function worstUlps(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, ulps(a[i] as number, b[i] as number));
  return worst;
}

describe('augmentations on the PyTorch engine: the tfjs engine batch for a seed', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  const torchPython: PythonWithTorch = python;
  let dir = '';
  let images: ExampleBatch['images'] = new Float32Array(0);
  let labels: ExampleBatch['labels'] = new Int32Array(0);
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-torch-augment-'));
    const dataset = new BuiltinDataset({ kind: 'builtin', split: 'train', imageSize: SIZE, classes: 10, seed: 0 });
    const batch = dataset.getSync(Int32Array.from({ length: N }, (_, i) => i));
    images = batch.images;
    labels = batch.labels;
    await writeFile(
      path.join(dir, 'inputs.safetensors'),
      encodeSafetensors(
        new Map([
          ['images', { dtype: 'F32' as const, shape: [N, SIZE, SIZE, 3], values: images }],
          ['labels', { dtype: 'I32' as const, shape: [N], values: labels }],
        ]),
      ),
    );
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs `body` (Python; `x`, `y`: the batch as numpy, `out`: tensors to return) and reads `out` back. */
  async function torchSide<T>(body: string): Promise<{ printed: T; tensors: Map<string, Float32Array> }> {
    const file = path.join(dir, `out-${Math.random().toString(36).slice(2)}.safetensors`);
    const script = `
import json, numpy as np, torch
from mimir_torch.safetensors_io import read_safetensors, write_safetensors
from mimir_torch.rng import Rng
from mimir_torch.data import augment as A
inputs, _ = read_safetensors(${JSON.stringify(path.join(dir, 'inputs.safetensors'))})
x = inputs["images"].numpy().astype(np.float32)
y = inputs["labels"].numpy().astype(np.int64)
out = {}
printed = None
${body}
write_safetensors(${JSON.stringify(file)}, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()})
print(json.dumps(printed))
`;
    const printed = runPython<T>(torchPython, ['-c', script], { env: { ...process.env, PYTHONPATH: PYTHON_DIR } });
    const decoded = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
    const tensors = new Map<string, Float32Array>();
    for (const [name, t] of decoded) tensors.set(name, Float32Array.from(t.data));
    return { printed, tensors };
  }

  it('each of the 14 ops, both signs, at magnitude bin 9 of 31 and at the strongest bin', async () => {
    const cases: Array<{ op: string; v: number }> = [];
    for (const op of RAND_AUGMENT_OPS) {
      for (const bin of [9, 30]) {
        const v = opMagnitude(op, bin, 31, SIZE);
        cases.push({ op, v }, { op, v: -v });
      }
    }
    const { tensors } = await torchSide<null>(`
cases = json.loads(${JSON.stringify(JSON.stringify(cases))})
for k, c in enumerate(cases):
    out[f"case.{k}"] = np.stack([A.apply_op(x[i].copy(), c["op"], c["v"]) for i in range(x.shape[0])])
`);
    let changed = 0;
    for (const [k, { op, v }] of cases.entries()) {
      const ours = images.slice();
      for (let i = 0; i < N; i++) applyOp(ours, i, SIZE, op as (typeof RAND_AUGMENT_OPS)[number], v);
      if (ours.some((value, i) => value !== images[i])) changed++;
      expect(worstUlps(tensors.get(`case.${k}`) ?? [], ours), `${op} ${v}`).toBeLessThanOrEqual(1);
    }
    // Every op but identity (and a zero-magnitude signed op) changes the images: the comparison is not vacuous.
    expect(changed).toBeGreaterThanOrEqual(cases.length - 8);
  });

  it('RandAugment over batches: the same ops drawn and the same pixels for 6 seeds', async () => {
    const config = RandAugmentConfig.parse({ numOps: 3 });
    const seeds = [1, 2, 3, 4, 5, 6];
    const { printed, tensors } = await torchSide<string[][][]>(`
config = json.loads(${JSON.stringify(JSON.stringify(config))})
printed = []
for seed in ${JSON.stringify(seeds)}:
    batch = x.copy()
    printed.append(A.rand_augment_batch(batch, config, Rng(seed)))
    out[f"seed.{seed}"] = batch
`);
    let worst = 0;
    for (const [s, seed] of seeds.entries()) {
      const ours = images.slice();
      const drawn = randAugmentBatch(ours, N, SIZE, config, new Rng(seed));
      expect(printed[s], `seed ${seed}`).toEqual(drawn);
      worst = Math.max(worst, worstUlps(tensors.get(`seed.${seed}`) ?? [], ours));
    }
    console.log(`[augment] RandAugment: worst pixel difference ${worst} ulp`);
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('MixUp / CutMix (each alone, both with the switch): the same images, targets, labels and lambda', async () => {
    const configs = [
      MixupConfig.parse({}),
      MixupConfig.parse({ cutmixAlpha: 0 }),
      MixupConfig.parse({ mixupAlpha: 0 }),
      MixupConfig.parse({ prob: 0.5 }),
    ];
    const seeds = [11, 12, 13, 14, 15];
    const { printed, tensors } = await torchSide<Array<{ lam: number; kind: string; labels: number[] }>>(`
configs = json.loads(${JSON.stringify(JSON.stringify(configs))})
printed = []
for c, config in enumerate(configs):
    for seed in ${JSON.stringify(seeds)}:
        images, targets, labels, lam, kind = A.mix_batch(x.copy(), y, 10, config, Rng(seed))
        printed.append({"lam": lam, "kind": kind, "labels": [int(v) for v in labels]})
        out[f"images.{c}.{seed}"] = images
        out[f"targets.{c}.{seed}"] = targets
`);
    const kinds = new Set<string>();
    let worst = 0;
    let k = 0;
    for (const [c, config] of configs.entries()) {
      for (const seed of seeds) {
        const ours = mixBatch(images.slice(), labels, SIZE, 10, config, new Rng(seed));
        const theirs = printed[k++];
        kinds.add(ours.kind);
        const what = `config ${c} seed ${seed}`;
        expect(theirs?.kind, what).toBe(ours.kind);
        expect(theirs?.labels, what).toEqual(Array.from(ours.labels));
        expect(Math.abs((theirs?.lam ?? NaN) - ours.lambda), what).toBeLessThanOrEqual(1e-15);
        worst = Math.max(worst, worstUlps(tensors.get(`images.${c}.${seed}`) ?? [], ours.images));
        expect(worstUlps(tensors.get(`targets.${c}.${seed}`) ?? [], ours.targets), what).toBeLessThanOrEqual(1);
      }
    }
    console.log(`[augment] MixUp/CutMix: worst pixel difference ${worst} ulp, kinds ${[...kinds].join(', ')}`);
    expect(worst).toBeLessThanOrEqual(1);
    expect([...kinds].sort()).toEqual(['cutmix', 'mixup', 'none']);
  });

  it('mimir finetune --engine torch with RandAugment and MixUp/CutMix takes the tfjs engine steps (per-step losses 1e-5)', () => {
    const settings = path.join(dir, 'augmented.json');
    const common = { logEvery: 1, heldOut: { size: 0 }, headInitStd: 0.02 };
    writeFileSync(settings, JSON.stringify({ ...common, randAugment: { numOps: 2 }, mixup: {} }));
    const plain = path.join(dir, 'plain.json');
    writeFileSync(plain, JSON.stringify(common));
    const losses = (engine: 'tfjs' | 'torch', config: string): number[] => {
      const result = runMimir(
        [
          'finetune',
          ...(engine === 'torch' ? ['--engine', 'torch'] : []),
          '--scratch',
          '--model',
          'micro',
          '--method',
          'natural',
          '--dataset-size',
          '32',
          '--image-size',
          '16',
          '--batch',
          '8',
          '--epochs',
          '1',
          '--config',
          config,
          '--out',
          path.join(dir, `run-${engine}-${path.basename(config, '.json')}`),
          '--json',
        ],
        { OMP_NUM_THREADS: '1' },
      );
      expect(result.status, result.stderr).toBe(0);
      return events(result.stdout).flatMap((e) =>
        e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : [],
      );
    };
    const [tfjs, torch, unaugmented] = [losses('tfjs', settings), losses('torch', settings), losses('torch', plain)];
    expect(torch).toHaveLength(4);
    expect(tfjs).toHaveLength(4);
    torch.forEach((loss, i) =>
      expect(Math.abs(loss - (tfjs[i] ?? NaN)) / Math.abs(loss), `step ${i + 1}`).toBeLessThan(1e-5),
    );
    // The augmentations change the batches, so the comparison above would see them go wrong.
    expect(unaugmented.some((loss, i) => Math.abs(loss - (torch[i] ?? NaN)) > 1e-4)).toBe(true);
  }, 600_000);
});
