import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/engine/rng';

describe('Rng', () => {
  it('repeats a stream for a seed and differs between seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const seqA = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(seqA);
  });

  it('resumes exactly from a saved state', () => {
    const rng = new Rng(7);
    for (let i = 0; i < 10; i++) rng.uniform();
    const resumed = Rng.fromState(rng.state());
    expect(Array.from({ length: 8 }, () => resumed.uniform())).toEqual(Array.from({ length: 8 }, () => rng.uniform()));
  });

  it('draws uniforms in [0, 1) with mean 1/2 and normals with mean 0, variance 1', () => {
    const rng = new Rng(1);
    const n = 200_000;
    let sum = 0;
    let min = 1;
    let max = 0;
    let nSum = 0;
    let nSq = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      sum += u;
      min = Math.min(min, u);
      max = Math.max(max, u);
      const z = rng.normal();
      nSum += z;
      nSq += z * z;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(sum / n).toBeCloseTo(0.5, 2);
    expect(nSum / n).toBeCloseTo(0, 2);
    expect(nSq / n).toBeCloseTo(1, 1);
  });
});
