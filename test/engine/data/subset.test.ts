import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuiltinDataset } from '../../../src/engine/data';
import { datasetFraction } from '../../../src/engine/data/subset';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import { collectEvents } from '../../../src/engine/train/run-lifecycle';
import { BuiltinSource } from '../../../src/shared/dataset-config';
import { useBackend } from '../../helpers/backend';

const source = BuiltinSource.parse({ kind: 'builtin', size: 100, imageSize: 16 });

describe('a seeded share of the training set', () => {
  it('holds round(fraction x n) distinct images of the dataset, the same ones for the same seed', async () => {
    const whole = new BuiltinDataset(source);
    const half = datasetFraction(whole, { fraction: 0.3, seed: 4 });
    expect(half.length).toBe(30);
    expect(half.description.summary).toContain('A 30% share (seed 4): 30 of 100 images.');
    const again = datasetFraction(whole, { fraction: 0.3, seed: 4 });
    const other = datasetFraction(whole, { fraction: 0.3, seed: 5 });
    const all = Array.from({ length: 30 }, (_, i) => i);
    const [a, b, c] = await Promise.all([half.get(all), again.get(all), other.get(all)]);
    expect(a.images).toEqual(b.images);
    expect(a.images).not.toEqual(c.images);
    // Each image of the share is one of the dataset's, with its label, and none twice.
    const wholeBatch = await whole.get(Array.from({ length: 100 }, (_, i) => i));
    const size = 16 * 16 * 3;
    const sources = all.map((i) => {
      const image = a.images.subarray(i * size, (i + 1) * size);
      const j = Array.from({ length: 100 }, (_, k) => k).find((k) =>
        image.every((v, p) => v === wholeBatch.images[k * size + p]),
      );
      expect(j, `image ${i} of the share is not in the dataset`).toBeDefined();
      expect(a.labels[i]).toBe(wholeBatch.labels[j ?? -1]);
      expect(half.labelOf(i)).toBe(a.labels[i]);
      return j;
    });
    expect(new Set(sources).size).toBe(30);
    expect(() => half.labelOf(30)).toThrow(RangeError);
    expect(datasetFraction(whole, { fraction: 1, seed: 0 })).toBe(whole);
  });

  it('makes a pre-training take fewer steps per epoch', async () => {
    await useBackend('cpu');
    const { events, emit } = collectEvents();
    await runPretraining(
      {
        mode: 'mae',
        model: 'micro',
        dataset: { kind: 'builtin', size: 128, imageSize: 16 },
        trainFraction: { fraction: 0.5, seed: 1 },
        epochs: 1,
        batchSize: 16,
      },
      { outDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-fraction-')), emit },
    );
    expect(events.find((e) => e.type === 'started')).toMatchObject({ stepsPerEpoch: 4, totalSteps: 4 });
    expect(events.at(-1)).toMatchObject({ type: 'done', step: 4 });
  });
});
