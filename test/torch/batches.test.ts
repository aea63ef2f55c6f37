import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchIterator, BuiltinDataset } from '../../src/engine/data';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { AugmentationConfig } from '../../src/shared/dataset-config';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * The PyTorch engine's batch iterator (python/mimir_torch/data/batches.py) hands out the same
 * batches as the tfjs engine's for a seed: the same dataset indices, the same augmented pixels
 * (random-resized-crop and pad-crop, with flips; within 1 float32 ulp) and the same iterator state,
 * across an epoch boundary.
 */

const SOURCE = { kind: 'builtin', split: 'train', size: 20, seed: 3, classes: 10, imageSize: 16 } as const;
const BATCH = 6;
/** 3 batches per epoch: 5 batches cross into the second epoch. */
const BATCHES = 5;

function ulps(a: number, b: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat32(0, a);
  view.setFloat32(4, b);
  return Math.abs(view.getInt32(0) - view.getInt32(4));
}

describe('batches: the same data order and augmentation in both engines', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-batches-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const kind of ['random-resized-crop', 'pad-crop'] as const) {
    it(kind, async () => {
      const augmentation = AugmentationConfig.parse({ kind });
      const file = path.join(dir, `${kind}.safetensors`);
      const script = `
import json, torch
from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.data.batches import BatchIterator
from mimir_torch.safetensors_io import write_safetensors
d = BuiltinDataset("train", ${SOURCE.size}, ${SOURCE.seed}, ${SOURCE.classes}, ${SOURCE.imageSize})
it = BatchIterator(d, ${BATCH}, 42, json.loads(${JSON.stringify(JSON.stringify(augmentation))}))
out, states = {}, []
for b in range(${BATCHES}):
    x, y, idx = it.next()
    out[f"images.{b}"] = torch.from_numpy(x)
    out[f"indices.{b}"] = torch.tensor(idx, dtype=torch.int32)
    states.append(it.state())
write_safetensors(${JSON.stringify(file)}, out)
print(json.dumps({"states": states}))
`;
      const torchSide = runPython<{ states: unknown[] }>(python, ['-c', script], {
        env: { ...process.env, PYTHONPATH: PYTHON_DIR },
      });
      const tensors = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
      const iterator = new BatchIterator(new BuiltinDataset(SOURCE), {
        batchSize: BATCH,
        seed: 42,
        augmentation,
        prefetch: 0,
      });
      let worst = 0;
      try {
        for (let b = 0; b < BATCHES; b++) {
          const batch = await iterator.nextArrays();
          expect(Array.from(tensors.get(`indices.${b}`)?.data ?? []), `batch ${b} indices`).toEqual(
            Array.from(batch.indices),
          );
          const theirs = tensors.get(`images.${b}`)?.data;
          expect(theirs?.length).toBe(batch.images.length);
          batch.images.forEach((v, i) => (worst = Math.max(worst, ulps(v, theirs?.[i] ?? NaN))));
          expect(torchSide.states[b], `state after batch ${b}`).toEqual(iterator.state());
        }
      } finally {
        iterator.close();
      }
      console.log(`[batches] ${kind}: worst pixel difference ${worst} ulp`);
      expect(worst).toBeLessThanOrEqual(1);
    });
  }
});
