import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuiltinDataset } from '../../src/engine/data';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * The built-in dataset of the PyTorch engine (python/mimir_torch/data/procedural.py) draws the same
 * images as the tfjs engine's for a seed, split and index: every pixel within 1 float32 ulp (V8's
 * fdlibm and Python's libm may differ in the last bit of a sine), labels equal.
 */

const CASES = [
  { split: 'train', seed: 0, imageSize: 16, indices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 97] },
  { split: 'test', seed: 7, imageSize: 32, indices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 123] },
] as const;

/** Distance in float32 ulps (both finite, same sign or zero). */
function ulps(a: number, b: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat32(0, a);
  view.setFloat32(4, b);
  return Math.abs(view.getInt32(0) - view.getInt32(4));
}

describe('built-in dataset: the same images in both engines', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-builtin-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.split} split, seed ${c.seed}, ${c.imageSize} px`, async () => {
      const file = path.join(dir, `${c.split}-${c.imageSize}.safetensors`);
      const script = [
        'import sys, torch',
        'from mimir_torch.data.procedural import BuiltinDataset',
        'from mimir_torch.safetensors_io import write_safetensors',
        `d = BuiltinDataset(${JSON.stringify(c.split)}, 1000, ${c.seed}, 10, ${c.imageSize})`,
        `x, y = d.batch(${JSON.stringify(c.indices)})`,
        `write_safetensors(${JSON.stringify(file)}, {"images": torch.from_numpy(x), "labels": torch.from_numpy(y)})`,
        'print("{}")',
      ].join('\n');
      runPython(python, ['-c', script], { env: { ...process.env, PYTHONPATH: PYTHON_DIR } });
      const torchSide = decodeSafetensors(new Uint8Array(await readFile(file))).tensors;
      const dataset = new BuiltinDataset({
        kind: 'builtin',
        split: c.split,
        size: 1000,
        seed: c.seed,
        classes: 10,
        imageSize: c.imageSize,
      });
      const ours = dataset.getSync(c.indices);
      const images = torchSide.get('images')?.data;
      expect(images?.length).toBe(ours.images.length);
      let worst = 0;
      let differing = 0;
      ours.images.forEach((value, i) => {
        const d = ulps(value, images?.[i] ?? NaN);
        worst = Math.max(worst, d);
        if (d > 0) differing++;
      });
      console.log(
        `[builtin] ${c.split} ${c.imageSize}px: ${differing} of ${ours.images.length} values differ, by at most ${worst} ulp`,
      );
      expect(worst).toBeLessThanOrEqual(1);
      expect(Array.from(torchSide.get('labels')?.data ?? [])).toEqual(Array.from(ours.labels));
    });
  }
});
