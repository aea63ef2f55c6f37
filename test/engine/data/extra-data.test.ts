import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchIterator, BuiltinDataset, type Dataset } from '../../../src/engine/data';
import { openExtraData } from '../../../src/engine/data/extra-data';
import { runFinetuning } from '../../../src/engine/finetune';
import { encodeNpy } from '../../../src/engine/io/npy';
import { collectEvents, RunFailedError } from '../../../src/engine/train/run-lifecycle';
import { BuiltinSource, ExtraData } from '../../../src/shared/dataset-config';
import { useBackend } from '../../helpers/backend';
import { int64Npy, npz } from '../../helpers/npz';

/**
 * Extra generated training data (paper Table XVIII): an .npz of uint8 images and integer labels,
 * EDM's format, read by the workbench's own zip and .npy reader and mixed into every batch.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-extra-data-'));
const SIZE = 16;
const PER_IMAGE = SIZE * SIZE * 3;
const base: Dataset = new BuiltinDataset(BuiltinSource.parse({ kind: 'builtin', size: 64, imageSize: SIZE }));

/** The test's images: pixel (i, h, w, c) = (7i + 3h + 5w + c) mod 256; labels i mod 10. */
const pixel = (i: number, h: number, w: number, c: number): number => (7 * i + 3 * h + 5 * w + c) % 256;
function images(n: number, size = SIZE): Uint8Array {
  const out = new Uint8Array(n * size * size * 3);
  let k = 0;
  for (let i = 0; i < n; i++)
    for (let h = 0; h < size; h++)
      for (let w = 0; w < size; w++) for (let c = 0; c < 3; c++) out[k++] = pixel(i, h, w, c);
  return out;
}
const labels = (n: number): number[] => Array.from({ length: n }, (_, i) => i % 10);

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

const u8Images = (n: number, size = SIZE) =>
  encodeNpy({ dtype: 'uint8', shape: [n, size, size, 3], data: images(n, size) });
const extra = (file: string, ratio = 0.3): ExtraData => ExtraData.parse({ path: file, ratio });

/** Checks an opened extra set against the test's pattern. */
async function expectPattern(dataset: Dataset, n: number): Promise<void> {
  expect(dataset.length).toBe(n);
  const picked = [n - 1, 0, 3];
  const batch = await dataset.get(picked);
  expect(Array.from(batch.labels)).toEqual(picked.map((i) => i % 10));
  picked.forEach((i, row) => {
    const [h, w, c] = [5, 9, 2];
    expect(batch.images[row * PER_IMAGE + (h * SIZE + w) * 3 + c]).toBeCloseTo(pixel(i, h, w, c) / 255, 7);
  });
}

describe('extra generated data (.npz)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('reads np.savez (stored, int64 "label") and np.savez_compressed ("x", "y") archives', async () => {
    const stored = write('stored.npz', npz({ image: u8Images(12), label: int64Npy(labels(12)) }));
    await expectPattern(await openExtraData(extra(stored), base), 12);
    const labels32 = encodeNpy({ dtype: 'int32', shape: [12], data: Int32Array.from(labels(12)) });
    const deflated = write('deflated.npz', npz({ x: u8Images(12), y: labels32 }, true));
    await expectPattern(await openExtraData(extra(deflated), base), 12);
  });

  // Debian's python3 (which .ci/run gives numpy) first, as the npy test looks for it.
  const python = ['/usr/bin/python3', 'python3'].find(
    (candidate) => spawnSync(candidate, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0,
  );
  it.skipIf(python === undefined)('reads the .npz files NumPy writes (savez and savez_compressed)', async () => {
    const script = `
import sys, numpy as np
i, h, w, c = np.meshgrid(np.arange(20), np.arange(16), np.arange(16), np.arange(3), indexing='ij')
image = ((7 * i + 3 * h + 5 * w + c) % 256).astype(np.uint8)
label = np.arange(20) % 10
assert label.dtype == np.int64
np.savez(sys.argv[1], image=image, label=label)
np.savez_compressed(sys.argv[2], x=image, y=label)
`;
    const [a, b] = [path.join(dir, 'numpy-savez.npz'), path.join(dir, 'numpy-compressed.npz')];
    const run = spawnSync(python ?? 'python3', ['-c', script, a, b], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    await expectPattern(await openExtraData(extra(a), base), 20);
    await expectPattern(await openExtraData(extra(b), base), 20);
  });

  it('refuses a missing file, wrong dtype or shape, a label count mismatch, another image size, unknown classes', async () => {
    const labels8 = int64Npy(labels(8));
    const cases: Array<[string, Uint8Array | null, RegExp]> = [
      ['missing.npz', null, /extraData: .*missing\.npz does not exist; give the path of the \.npz file/],
      ['not-zip.npz', new TextEncoder().encode('hello'), /not a \.npz file \(no zip directory\)/],
      [
        'float.npz',
        npz({
          image: encodeNpy({ dtype: 'float32', shape: [8, SIZE, SIZE, 3], data: new Float32Array(8 * PER_IMAGE) }),
          label: labels8,
        }),
        /the images are float32; give uint8 pixels 0\.\.255 \[N, H, W, 3\]/,
      ],
      [
        'gray.npz',
        npz({
          image: encodeNpy({ dtype: 'uint8', shape: [8, SIZE, SIZE], data: new Uint8Array(8 * SIZE * SIZE) }),
          label: labels8,
        }),
        /the images have shape \(8, 16, 16\); give square RGB images \[N, H, W, 3\]/,
      ],
      ['count.npz', npz({ image: u8Images(9), label: labels8 }), /9 images but 8 labels; give one label per image/],
      ['size.npz', npz({ image: u8Images(8, 8), label: labels8 }), /its images are 8 px but the dataset's are 16 px/],
      [
        'classes.npz',
        npz({ image: u8Images(8), label: int64Npy([0, 1, 2, 3, 4, 5, 6, 12]) }),
        /label 12 \(image 7\) is not one of the dataset's 10 classes 0\.\.9/,
      ],
      ['nolabel.npz', npz({ image: u8Images(8), z: labels8 }), /no "label" or "y" array \(it holds image, z\)/],
      [
        'floatlabels.npz',
        npz({ image: u8Images(8), label: encodeNpy({ dtype: 'float32', shape: [8], data: new Float32Array(8) }) }),
        /dtype '<f4' is not an integer type/,
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const file = bytes ? write(name, bytes) : path.join(dir, name);
      await expect(openExtraData(extra(file), base), name).rejects.toThrow(message);
    }
    expect(ExtraData.safeParse({ path: 'x.npy', ratio: 0.3 }).error?.issues[0]?.message).toBe(
      'extraData.path must name a .npz file',
    );
    expect(ExtraData.safeParse({ path: 'x.npz', ratio: 1 }).error?.issues[0]?.message).toContain('below 1');
  });

  it('puts round(ratio x batch) extra images in every batch, the rest from the dataset, whose size sets the epoch', async () => {
    const file = write('mix.npz', npz({ image: u8Images(40), label: int64Npy(labels(40)) }));
    const generated = await openExtraData(extra(file), base);
    for (const [batchSize, ratio, extraCount] of [
      [10, 0.3, 3],
      [8, 0.5, 4],
      [16, 0.7, 11],
    ] as const) {
      const iterator = new BatchIterator(base, { batchSize, seed: 3, extra: { dataset: generated, ratio } });
      const main = batchSize - extraCount;
      expect([iterator.mainPerBatch, iterator.extraPerBatch]).toEqual([main, extraCount]);
      expect(iterator.batchesPerEpoch).toBe(Math.floor(64 / main));
      const seenMain = new Set<number>();
      for (let b = 0; b < iterator.batchesPerEpoch; b++) {
        const batch = await iterator.nextArrays();
        expect(batch.labels).toHaveLength(batchSize);
        const ids = Array.from(batch.indices);
        const fromMain = ids.slice(0, main);
        const fromExtra = ids.slice(main).map((id) => id - 64);
        expect(fromMain.every((id) => id >= 0 && id < 64)).toBe(true);
        expect(fromExtra.every((i) => i >= 0 && i < 40)).toBe(true);
        expect(new Set(fromExtra).size).toBe(extraCount);
        for (const id of fromMain) seenMain.add(id);
        // No augmentation: the extra rows are the generated images and labels themselves.
        const expected = await generated.get(fromExtra);
        expect(Array.from(batch.labels.slice(main))).toEqual(Array.from(expected.labels));
        expect(batch.images.slice(main * PER_IMAGE)).toEqual(expected.images);
        const own = await base.get(fromMain);
        expect(Array.from(batch.labels.slice(0, main))).toEqual(Array.from(own.labels));
      }
      // An epoch visits distinct dataset images, each once.
      expect(seenMain.size).toBe(iterator.batchesPerEpoch * main);
    }
    expect(
      () => new BatchIterator(base, { batchSize: 10, seed: 3, extra: { dataset: generated, ratio: 0.01 } }),
    ).toThrow(
      'extraData.ratio 0.01 of a batch of 10 is 0 generated images and 10 of the dataset; choose a ratio (or batch size) that leaves at least one of each.',
    );
  });

  it('a saved iterator state resumes with the same extra images', async () => {
    const file = write('resume.npz', npz({ image: u8Images(40), label: int64Npy(labels(40)) }));
    const generated = await openExtraData(extra(file), base);
    const options = { batchSize: 10, seed: 9, extra: { dataset: generated, ratio: 0.3 } };
    const first = new BatchIterator(base, options);
    await first.nextArrays();
    await first.nextArrays();
    const state = first.state();
    const next = await first.nextArrays();
    const resumed = await new BatchIterator(base, { ...options, state }).nextArrays();
    expect(Array.from(resumed.indices)).toEqual(Array.from(next.indices));
    // Another batch draws other extra images.
    expect(Array.from(next.indices.slice(7))).not.toEqual(Array.from((await first.nextArrays()).indices.slice(7)));
  });

  it('a fine-tuning run trains with the extra data, and a missing file fails it as a config problem', async () => {
    const file = write('finetune.npz', npz({ image: u8Images(40), label: int64Npy(labels(40)) }));
    const config = {
      method: 'natural' as const,
      source: { kind: 'scratch' as const, model: 'micro' as const },
      dataset: { kind: 'builtin' as const, imageSize: SIZE, size: 32 },
      epochs: 1,
      batchSize: 16,
      heldOut: { size: 0 },
      optimizer: { warmupEpochs: 0 },
      extraData: { path: file, ratio: 0.5 },
    };
    const { events, emit } = collectEvents();
    await runFinetuning(config, { outDir: mkdtempSync(path.join(dir, 'ft-')), emit });
    // 32 dataset images at 8 a batch: 4 steps (16 a batch without the extra data: 2).
    expect(events[0]).toMatchObject({ type: 'started', stepsPerEpoch: 4 });
    expect(events.at(-1)?.type).toBe('done');

    const missing = collectEvents();
    await expect(
      runFinetuning(
        { ...config, extraData: { path: path.join(dir, 'gone.npz'), ratio: 0.5 } },
        { outDir: mkdtempSync(path.join(dir, 'ft-')), emit: missing.emit },
      ),
    ).rejects.toThrow(RunFailedError);
    expect(missing.events.at(-1)).toMatchObject({
      type: 'failed',
      cause: 'config',
      message: expect.stringContaining('gone.npz does not exist'),
    });
  });
});
