import { describe, expect, it } from 'vitest';
import { CORRUPTION_TYPES, type CorruptionType } from '../../../src/shared/evaluation';
import {
  boxResampleWeights,
  corruptImages,
  diskKernel,
  poisson,
  reflect101,
  SEVERITY_TABLES,
  tableForImageSize,
} from '../../../src/engine/corruptions';
import { Rng } from '../../../src/engine/rng';

const C = 3;

/** Smooth gradients plus a sharp square and a little texture: something every corruption visibly changes. */
function testImages(count: number, size: number, seed = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(count * size * size * C);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inSquare = x > size / 4 && x < (3 * size) / 4 && y > size / 3 && y < (2 * size) / 3;
        for (let c = 0; c < C; c++) {
          const base = 0.2 + 0.5 * ((x + c * y + n) / (2 * size)) + (inSquare ? 0.25 : 0) + 0.05 * rng.uniform();
          out[((n * size + y) * size + x) * C + c] = Math.min(1, Math.max(0, base));
        }
      }
    }
  }
  return out;
}

const meanAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((s, v, i) => s + Math.abs(v - (b[i] ?? 0)), 0) / a.length;

describe('common corruptions', () => {
  it('stay in [0, 1] and get stronger with severity, for every type (CIFAR-10-C table, 32 px)', async () => {
    const size = 32;
    const count = 4;
    const clean = testImages(count, size);
    const figures: Record<string, string> = {};
    for (const type of CORRUPTION_TYPES) {
      const distances: number[] = [];
      for (let severity = 1; severity <= 5; severity++) {
        const out = await corruptImages(clean, count, size, type, severity, { table: 'cifar10', seed: 3 });
        expect(out.length).toBe(clean.length);
        expect(
          out.every((v) => v >= 0 && v <= 1 && Number.isFinite(v)),
          `${type} ${severity} range`,
        ).toBe(true);
        distances.push(meanAbsDiff(out, clean));
      }
      figures[type] = distances.map((d) => d.toFixed(4)).join(' ');
      expect(distances[0], `${type} severity 1 changes the image`).toBeGreaterThan(1e-4);
      // Pixelate's pixel error is not monotone between neighbouring severities (32 -> 30 aliases worse
      // than 32 -> 28 on some images); its resolution is, and severity 5 must be clearly worse.
      for (let s = 1; s < 5 && type !== 'pixelate'; s++) {
        expect(distances[s], `${type}: severity ${s + 1} vs ${s} (${figures[type]})`).toBeGreaterThanOrEqual(
          (distances[s - 1] ?? 0) * 0.98,
        );
      }
      expect(distances[4], `${type}: severity 5 clearly above 1`).toBeGreaterThan((distances[0] ?? 0) * 1.2);
    }
    console.log('mean |corrupted - clean| by severity 1..5:', figures);
  });

  it('repeat with the seed and draw each example from its own stream, whatever the batch', async () => {
    const size = 16;
    const clean = testImages(3, size);
    for (const type of ['gaussian-noise', 'shot-noise', 'impulse-noise'] as CorruptionType[]) {
      const a = await corruptImages(clean, 3, size, type, 3, { table: 'cifar10', seed: 7, ids: [10, 11, 12] });
      const b = await corruptImages(clean, 3, size, type, 3, { table: 'cifar10', seed: 7, ids: [10, 11, 12] });
      expect(Array.from(a)).toEqual(Array.from(b));
      const pixels = size * size * C;
      const alone = await corruptImages(clean.slice(pixels, 2 * pixels), 1, size, type, 3, {
        table: 'cifar10',
        seed: 7,
        ids: [11],
      });
      expect(Array.from(alone)).toEqual(Array.from(a.subarray(pixels, 2 * pixels)));
      const other = await corruptImages(clean, 3, size, type, 3, { table: 'cifar10', seed: 8, ids: [10, 11, 12] });
      expect(meanAbsDiff(a, other)).toBeGreaterThan(0);
    }
  });

  it('brightness and contrast match their closed forms', async () => {
    const size = 8;
    const image = new Float32Array(size * size * C);
    // pixel 0: grey 0.4; pixel 1: colour (0.6, 0.3, 0.15); pixel 2: black; pixel 3: near white; rest mid grey.
    image.fill(0.5);
    image.set([0.4, 0.4, 0.4, 0.6, 0.3, 0.15, 0, 0, 0, 0.9, 0.95, 0.8], 0);
    for (let severity = 1; severity <= 5; severity++) {
      const c = SEVERITY_TABLES.cifar10.brightness[severity - 1] ?? 0;
      const out = await corruptImages(image, 1, size, 'brightness', severity, { table: 'cifar10' });
      const expected = [
        0.4 + c,
        0.4 + c,
        0.4 + c,
        0.6 * ((0.6 + c) / 0.6),
        0.3 * ((0.6 + c) / 0.6),
        0.15 * ((0.6 + c) / 0.6),
        c,
        c,
        c,
        (0.9 * Math.min(0.95 + c, 1)) / 0.95,
        Math.min(0.95 + c, 1),
        (0.8 * Math.min(0.95 + c, 1)) / 0.95,
      ];
      expected.forEach((e, i) => expect(out[i]).toBeCloseTo(e, 6));
    }
    const rng = new Rng(2);
    const random = Float32Array.from({ length: size * size * C }, () => 0.3 + 0.4 * rng.uniform());
    const out = await corruptImages(random, 1, size, 'contrast', 2, { table: 'cifar10' });
    for (let c = 0; c < C; c++) {
      let mean = 0;
      for (let p = 0; p < size * size; p++) mean += random[p * C + c] ?? 0;
      mean /= size * size;
      for (let p = 0; p < size * size; p++) {
        expect(out[p * C + c]).toBeCloseTo(((random[p * C + c] ?? 0) - mean) * 0.5 + mean, 6);
      }
    }
  });

  it('blurs and pixelation leave a constant image unchanged; JPEG nearly so', async () => {
    for (const size of [16, 32, 64]) {
      const flat = new Float32Array(size * size * C).fill(0.37);
      for (const type of ['gaussian-blur', 'defocus-blur', 'pixelate', 'contrast'] as CorruptionType[]) {
        for (const severity of [1, 5]) {
          const out = await corruptImages(flat, 1, size, type, severity, { table: tableForImageSize(size) });
          expect(Math.max(...out.map((v) => Math.abs(v - 0.37))), `${type} ${severity} ${size}px`).toBeLessThan(1e-6);
        }
      }
      const j = await corruptImages(flat, 1, size, 'jpeg', 5, { table: 'cifar10' });
      expect(Math.max(...j.map((v) => Math.abs(v - Math.round(0.37 * 255) / 255)))).toBeLessThanOrEqual(1.5 / 255);
    }
  });

  it('noises have the statistics of their parameters', async () => {
    const size = 64;
    const grey = new Float32Array(size * size * C).fill(0.5);
    const count = size * size * C;
    const stats = (out: Float32Array) => {
      const mean = out.reduce((s, v) => s + v, 0) / count;
      const variance = out.reduce((s, v) => s + (v - mean) ** 2, 0) / count;
      return { mean, std: Math.sqrt(variance) };
    };
    const g = stats(await corruptImages(grey, 1, size, 'gaussian-noise', 5, { table: 'cifar10', seed: 1 }));
    expect(g.mean).toBeCloseTo(0.5, 2);
    expect(g.std).toBeGreaterThan(0.1 * 0.95);
    expect(g.std).toBeLessThan(0.1 * 1.05);
    const s = stats(await corruptImages(grey, 1, size, 'shot-noise', 1, { table: 'cifar10', seed: 1 }));
    expect(s.mean).toBeCloseTo(0.5, 2);
    expect(s.std).toBeGreaterThan(Math.sqrt(0.5 / 500) * 0.95);
    expect(s.std).toBeLessThan(Math.sqrt(0.5 / 500) * 1.05);
    const imp = await corruptImages(grey, 1, size, 'impulse-noise', 5, { table: 'cifar10', seed: 1 });
    const flipped = imp.filter((v) => v !== 0.5).length / count;
    const salt = imp.filter((v) => v === 1).length / count;
    expect(flipped).toBeGreaterThan(0.07 * 0.85);
    expect(flipped).toBeLessThan(0.07 * 1.15);
    expect(salt / flipped).toBeGreaterThan(0.4);
    expect(salt / flipped).toBeLessThan(0.6);
    console.log('gaussian std', g.std.toFixed(4), 'shot std', s.std.toFixed(4), 'impulse share', flipped.toFixed(4));
  });

  it('Poisson draws have mean and variance lambda, small and large', () => {
    const rng = new Rng(5);
    for (const lambda of [0.5, 3, 9.5, 12, 200, 500]) {
      const n = 20000;
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < n; i++) {
        const k = poisson(rng, lambda);
        expect(Number.isInteger(k) && k >= 0).toBe(true);
        sum += k;
        sq += k * k;
      }
      const mean = sum / n;
      const variance = sq / n - mean * mean;
      expect(Math.abs(mean - lambda), `mean at ${lambda}`).toBeLessThan(4 * Math.sqrt(lambda / n));
      expect(Math.abs(variance / lambda - 1), `variance at ${lambda}`).toBeLessThan(0.06);
    }
  });

  it('defocus kernel and box resampling follow OpenCV and Pillow', () => {
    const { kernel, k } = diskKernel(1, 0.2);
    expect(k).toBe(17);
    expect(kernel.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
    // radius 1: the centre and its four neighbours, each 1/5, then a 3x3 blur of sigma 0.2.
    const g = [Math.exp(-0.5 / 0.04), 1, Math.exp(-0.5 / 0.04)];
    const gs = g[0] + g[1] + g[2];
    const w = g.map((v) => v / gs);
    const centre = (w[1] * w[1] + 4 * w[0] * w[1]) / 5;
    expect(kernel[8 * 17 + 8]).toBeCloseTo(centre, 12);
    expect(reflect101(-1, 5)).toBe(1);
    expect(reflect101(5, 5)).toBe(3);
    expect(reflect101(-9, 4)).toBe(3);
    // 4 -> 2: each output averages two inputs; 2 -> 4: each output copies one input.
    expect(boxResampleWeights(4, 2).map((c) => [c.start, ...c.weights])).toEqual([
      [0, 0.5, 0.5],
      [2, 0.5, 0.5],
    ]);
    expect(
      boxResampleWeights(2, 4).map((c) => [c.start, ...Array.from(c.weights).map((v) => (v === 0 ? 0 : v))]),
    ).toEqual([
      [0, 1],
      [0, 1],
      [1, 1],
      [1, 1],
    ]);
    // 32 -> 30 (CIFAR pixelate severity 1): weights cover 32/30 input pixels and sum to 1.
    for (const c of boxResampleWeights(32, 30)) expect(c.weights.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
  });
});
