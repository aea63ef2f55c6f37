import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { maskFromIds, randomMasking } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';

describe('randomMasking', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('masks exactly int(L * 0.75) patches per sample, as consistent tensors and host arrays', () => {
    const m = randomMasking(new Rng(1), 6, 256, 0.75);
    expect([m.numVisible, m.numMasked]).toEqual([64, 192]);
    expect(m.visibleIds.shape).toEqual([6, 64]);
    expect(m.maskedIds.shape).toEqual([6, 192]);
    expect(m.visibleIds.dtype).toBe('int32');
    const maskRows = m.mask.arraySync();
    const vis = m.visibleIds.arraySync();
    const masked = m.maskedIds.arraySync();
    for (let n = 0; n < 6; n++) {
      const row = maskRows[n] ?? [];
      expect(row.reduce((a, b) => a + b, 0)).toBe(192);
      const v = vis[n] ?? [];
      const k = masked[n] ?? [];
      expect(v).toEqual(Array.from(m.visible[n] ?? []));
      expect(k).toEqual(Array.from(m.masked[n] ?? []));
      expect([...v, ...k].sort((a, b) => a - b)).toEqual(Array.from({ length: 256 }, (_, i) => i));
      expect(v).toEqual([...v].sort((a, b) => a - b)); // spatial order
      for (const id of v) expect(row[id]).toBe(0);
      for (const id of k) expect(row[id]).toBe(1);
    }
    m.dispose();
  });

  it('differs between samples, repeats per seed, and covers patches uniformly', () => {
    const a = randomMasking(new Rng(7), 4, 64, 0.75);
    const b = randomMasking(new Rng(7), 4, 64, 0.75);
    const c = randomMasking(new Rng(8), 4, 64, 0.75);
    expect(a.visible.map((v) => Array.from(v))).toEqual(b.visible.map((v) => Array.from(v)));
    expect(a.visible[0]).not.toEqual(a.visible[1]);
    expect(a.visible.map((v) => Array.from(v))).not.toEqual(c.visible.map((v) => Array.from(v)));
    [a, b, c].forEach((m) => m.dispose());

    const counts = new Array<number>(16).fill(0);
    const rng = new Rng(3);
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const m = randomMasking(rng, 1, 16, 0.75);
      for (const id of m.visible[0] ?? []) counts[id] = (counts[id] ?? 0) + 1;
      m.dispose();
    }
    // Each patch is visible with probability 4/16: 1000 expected, sd about 27.
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });

  it('keeps the draw order with order: shuffled, and validates ratios and ids', () => {
    const m = randomMasking(new Rng(5), 8, 64, 0.75, { order: 'shuffled' });
    expect(m.visible.some((v) => Array.from(v).some((id, i) => i > 0 && id < (v[i - 1] ?? 0)))).toBe(true);
    m.dispose();
    expect(() => randomMasking(new Rng(1), 1, 4, 0.9)).toThrow(/at least one/);
    expect(() => randomMasking(new Rng(1), 1, 4, 1)).toThrow(/\(0, 1\)/);
    expect(() => maskFromIds([Int32Array.from([0, 1])], [Int32Array.from([1, 2])], 4)).toThrow(/not a permutation/);
    expect(tf.memory().numTensors).toBe(0);
  });
});
