import { describe, expect, it } from 'vitest';
import { openDataset } from '../../../src/engine/data/open-dataset';
import { BuiltinDataset } from '../../../src/engine/data/procedural';
import { BUILTIN_CLASSES, BuiltinSource } from '../../../src/shared/dataset-config';

const builtin = (input: Partial<BuiltinSource> = {}) =>
  new BuiltinDataset(BuiltinSource.parse({ kind: 'builtin', ...input }));
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('built-in procedural dataset', () => {
  it('has 10 named, described classes, 32x32 images and 5,000 / 1,000 images by default', async () => {
    const train = await openDataset({ kind: 'builtin' });
    const test = await openDataset({ kind: 'builtin', split: 'test' });
    expect(train.length).toBe(5000);
    expect(test.length).toBe(1000);
    expect(train.numClasses).toBe(10);
    expect(train.imageSize).toBe(32);
    expect(train.classNames).toEqual(BUILTIN_CLASSES.map((c) => c.name));
    expect(new Set(train.classNames).size).toBe(10);
    for (const c of BUILTIN_CLASSES) expect(c.description.length).toBeGreaterThan(20);
    expect(train.description).toMatchObject({ kind: 'builtin', split: 'train', location: 'generated' });
    expect(train.description.summary).toContain('5,000 images');
  });

  it('draws the same image for the same (seed, split, index), whatever else is asked for with it', async () => {
    const a = builtin({ seed: 3 });
    const b = builtin({ seed: 3 });
    const together = await a.get([7, 123, 7, 4999]);
    const alone = await b.get([123]);
    const pixels = 32 * 32 * 3;
    expect(together.images.subarray(pixels, 2 * pixels)).toEqual(alone.images);
    expect(together.images.subarray(0, pixels)).toEqual(together.images.subarray(2 * pixels, 3 * pixels));
    expect(Array.from(together.labels)).toEqual([7, 3, 7, 9]);

    const otherSeed = await builtin({ seed: 4 }).get([123]);
    const otherSplit = await builtin({ seed: 3, split: 'test' }).get([123]);
    const differ = (x: Float32Array, y: Float32Array) => x.some((v, i) => Math.abs(v - (y[i] as number)) > 0.05);
    expect(differ(otherSeed.images, alone.images)).toBe(true);
    expect(differ(otherSplit.images, alone.images)).toBe(true);
  });

  it('gives NHWC float32 images in [0, 1] with real contrast, at any image size', async () => {
    for (const imageSize of [12, 16, 32, 48]) {
      const ds = builtin({ imageSize, size: 40 });
      const { images, labels } = await ds.get(range(40));
      expect(images).toBeInstanceOf(Float32Array);
      expect(labels).toBeInstanceOf(Int32Array);
      const pixels = imageSize * imageSize * 3;
      expect(images.length).toBe(40 * pixels);
      for (let i = 0; i < 40; i++) {
        const img = images.subarray(i * pixels, (i + 1) * pixels);
        let sum = 0;
        let sq = 0;
        let min = Infinity;
        let max = -Infinity;
        for (const v of img) {
          min = Math.min(min, v);
          max = Math.max(max, v);
          sum += v;
          sq += v * v;
        }
        expect(min).toBeGreaterThanOrEqual(0);
        expect(max).toBeLessThanOrEqual(1);
        const mean = sum / pixels;
        expect(Math.sqrt(sq / pixels - mean * mean)).toBeGreaterThan(0.03);
      }
    }
  });

  it('balances the classes exactly and labels without drawing', async () => {
    for (const classes of [10, 4]) {
      const ds = builtin({ classes, size: 1000 });
      const counts = new Array<number>(classes).fill(0);
      for (let i = 0; i < ds.length; i++) counts[ds.labelOf(i)]++;
      expect(counts).toEqual(new Array<number>(classes).fill(1000 / classes));
      const { labels } = await ds.get(range(20, 100));
      expect(Array.from(labels)).toEqual(range(20, 100).map((i) => ds.labelOf(i)));
    }
  });

  it('is not separable from raw pixels: nearest class mean and a linear softmax stay far below 100%', async () => {
    const train = builtin({ size: 3000 }).getSync(range(3000));
    const test = builtin({ split: 'test', size: 1000 }).getSync(range(1000));
    const D = 32 * 32 * 3;
    const K = 10;

    // Nearest class mean on raw pixels.
    const means = new Float64Array(K * D);
    const counts = new Float64Array(K);
    for (let i = 0; i < 3000; i++) {
      const y = train.labels[i] as number;
      counts[y]++;
      for (let j = 0; j < D; j++) means[y * D + j] += train.images[i * D + j] as number;
    }
    for (let k = 0; k < K; k++) for (let j = 0; j < D; j++) means[k * D + j] /= counts[k] as number;
    let ncmCorrect = 0;
    for (let i = 0; i < 1000; i++) {
      let best = -1;
      let bestDistance = Infinity;
      for (let k = 0; k < K; k++) {
        let d = 0;
        for (let j = 0; j < D; j++) d += ((test.images[i * D + j] as number) - (means[k * D + j] as number)) ** 2;
        if (d < bestDistance) [best, bestDistance] = [k, d];
      }
      if (best === test.labels[i]) ncmCorrect++;
    }

    // Linear softmax on centred raw pixels, SGD.
    const mu = new Float64Array(D);
    for (let i = 0; i < 3000; i++) for (let j = 0; j < D; j++) mu[j] += (train.images[i * D + j] as number) / 3000;
    const W = new Float64Array(K * D);
    const b = new Float64Array(K);
    const z = new Float64Array(K);
    const logits = (x: Float32Array, i: number) => {
      for (let k = 0; k < K; k++) {
        let s = b[k] as number;
        for (let j = 0; j < D; j++) s += (W[k * D + j] as number) * ((x[i * D + j] as number) - (mu[j] as number));
        z[k] = s;
      }
      return z;
    };
    const accuracy = (set: { images: Float32Array; labels: Int32Array }, n: number) => {
      let correct = 0;
      for (let i = 0; i < n; i++) {
        const l = logits(set.images, i);
        if (l.indexOf(Math.max(...l)) === set.labels[i]) correct++;
      }
      return correct / n;
    };
    for (let epoch = 0; epoch < 8; epoch++) {
      for (let i = 0; i < 3000; i++) {
        const l = logits(train.images, i);
        const max = Math.max(...l);
        let sum = 0;
        for (let k = 0; k < K; k++) sum += l[k] = Math.exp((l[k] as number) - max);
        for (let k = 0; k < K; k++) {
          const g = ((l[k] as number) / sum - (k === train.labels[i] ? 1 : 0)) * 0.01;
          b[k] -= g;
          for (let j = 0; j < D; j++) W[k * D + j] -= g * ((train.images[i * D + j] as number) - (mu[j] as number));
        }
      }
    }
    const ncm = ncmCorrect / 1000;
    const linearTrain = accuracy(train, 3000);
    const linearTest = accuracy(test, 1000);
    console.log(
      `built-in set, raw pixels: nearest class mean ${(ncm * 100).toFixed(1)}%, linear softmax train ${(linearTrain * 100).toFixed(1)}% / test ${(linearTest * 100).toFixed(1)}% (chance 10%)`,
    );
    // Above chance (the classes differ in where mass and edges sit), far from solved.
    expect(ncm).toBeGreaterThan(0.12);
    expect(ncm).toBeLessThan(0.4);
    expect(linearTest).toBeGreaterThan(0.14);
    expect(linearTest).toBeLessThan(0.45);
  });

  // The time is printed, not asserted: CI may share the cores (a 250 ms limit failed at load 18).
  it('draws 256-image batches, the same images for the same indices (time printed)', async () => {
    const ds = builtin();
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      ds.getSync(range(256, 256 * (r + 1)));
      times.push(performance.now() - t0);
    }
    const median = times.sort((x, y) => x - y)[2] as number;
    console.log(`built-in set: 256 images of 32x32 in ${median.toFixed(1)} ms (median of 5)`);
    const first = ds.getSync(range(256, 256));
    const again = ds.getSync(range(256, 256));
    expect(first.images.length).toBe(256 * 32 * 32 * 3);
    expect(Buffer.from(again.images.buffer).equals(Buffer.from(first.images.buffer))).toBe(true);
    expect(Array.from(again.labels)).toEqual(Array.from(first.labels));
  });
});
