import { describe, expect, it } from 'vitest';
import { BatchIterator, BuiltinDataset } from '../../src/engine/data';
import { AugmentationConfig } from '../../src/shared/dataset-config';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * The PyTorch engine's GlobalBatchSampler (python/mimir_torch/distributed.py) is a
 * torch.utils.data.distributed.DistributedSampler whose ranks, in rank order, make up exactly the
 * batches one process trains: the tfjs engine's data order for the seed, over three epochs.
 */

const SOURCE = { kind: 'builtin', split: 'train', size: 20, seed: 3, classes: 10, imageSize: 8 } as const;
const BATCH = 8;
const EPOCHS = 3;
/** 20 images, batches of 8: 2 batches per epoch, the last 4 images of each epoch dropped. */
const PER_EPOCH = 2;

describe('GlobalBatchSampler: DistributedSampler over the workbench order', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  const env = { ...process.env, PYTHONPATH: PYTHON_DIR };

  async function tfjsBatches(): Promise<number[][]> {
    const iterator = new BatchIterator(new BuiltinDataset(SOURCE), {
      batchSize: BATCH,
      seed: 42,
      augmentation: AugmentationConfig.parse({ kind: 'none' }),
      prefetch: 0,
    });
    const out: number[][] = [];
    for (let b = 0; b < EPOCHS * PER_EPOCH; b++) out.push(Array.from((await iterator.nextArrays()).indices));
    return out;
  }

  for (const worldSize of [2, 4]) {
    it(`${worldSize} ranks: each yields its ${BATCH / worldSize} rows of every global batch, which together are one process's batches`, async () => {
      const script = `
import json
from torch.utils.data.distributed import DistributedSampler
from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.data.batches import BatchIterator
from mimir_torch.distributed import GlobalBatchSampler, World
d = BuiltinDataset("train", ${SOURCE.size}, ${SOURCE.seed}, ${SOURCE.classes}, ${SOURCE.imageSize})
it = BatchIterator(d, ${BATCH}, 42, {"kind": "none"})
samplers = [GlobalBatchSampler(len(d), ${BATCH}, World(r, ${worldSize}, r)) for r in range(${worldSize})]
epochs = []
for e in range(${EPOCHS}):
    for s in samplers:
        s.set_epoch(e)
        s.set_order(it.plan.order)
    epochs.append([list(iter(s)) for s in samplers])
    for _ in range(it.batches_per_epoch):
        it.next()
print(json.dumps({"isDistributedSampler": all(isinstance(s, DistributedSampler) for s in samplers), "lengths": [len(s) for s in samplers], "epochs": epochs}))
`;
      const result = runPython<{ isDistributedSampler: boolean; lengths: number[]; epochs: number[][][] }>(
        python,
        ['-c', script],
        { env },
      );
      expect(result.isDistributedSampler).toBe(true);
      const perRank = BATCH / worldSize;
      expect(result.lengths).toEqual(new Array<number>(worldSize).fill(PER_EPOCH * perRank));
      const expected = await tfjsBatches();
      for (let e = 0; e < EPOCHS; e++) {
        const ranks = result.epochs[e] ?? [];
        for (let b = 0; b < PER_EPOCH; b++) {
          const joined = ranks.flatMap((indices) => indices.slice(b * perRank, (b + 1) * perRank));
          expect(joined, `epoch ${e} batch ${b}`).toEqual(expected[e * PER_EPOCH + b]);
        }
      }
    });
  }

  it('refuses a batch that does not split over the processes, saying what to change', () => {
    const script = `
import json
from mimir_torch.distributed import GlobalBatchSampler, World
try:
    GlobalBatchSampler(20, 6, World(0, 4, 0))
    print(json.dumps({"error": None}))
except ValueError as error:
    print(json.dumps({"error": str(error)}))
`;
    const result = runPython<{ error: string | null }>(python, ['-c', script], { env });
    expect(result.error).toMatch(/batch 6 does not split over 4 processes: make it a multiple of --nproc x nodes/);
  });
});
