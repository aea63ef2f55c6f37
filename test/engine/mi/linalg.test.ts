import { describe, expect, it } from 'vitest';
import { invertInPlace, symmetricEigen } from '../../../src/engine/mi/linalg';
import { Rng } from '../../../src/engine/rng';
import { jacobiEigenvalues } from './reference';

const flat = (rows: number[][]): Float64Array => Float64Array.from(rows.flat());
const entry = (a: Float64Array, n: number, i: number, j: number): number => a[i * n + j] ?? Number.NaN;

function randomSymmetric(rng: Rng, n: number): number[][] {
  const m = Array.from({ length: n }, () => Array.from({ length: n }, () => rng.normal()));
  return m.map((row, i) => row.map((v, j) => 0.5 * (v + (m[j]?.[i] ?? 0))));
}

describe('invertInPlace', () => {
  it('inverts a general matrix, pivoting past a zero diagonal', () => {
    const rng = new Rng(1);
    const n = 20;
    const rows = Array.from({ length: n }, () => Array.from({ length: n }, () => rng.normal()));
    (rows[0] as number[])[0] = 0;
    const a = flat(rows);
    const inv = Float64Array.from(a);
    invertInPlace(inv, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += entry(a, n, i, k) * entry(inv, n, k, j);
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-10);
  });

  it('refuses a singular matrix', () => {
    expect(() =>
      invertInPlace(
        flat([
          [1, 2],
          [2, 4],
        ]),
        2,
      ),
    ).toThrow(/singular/);
    expect(() =>
      invertInPlace(
        flat([
          [1, Number.NaN],
          [0, 1],
        ]),
        2,
      ),
    ).toThrow(/singular/);
  });
});

describe('symmetricEigen', () => {
  it('decomposes a random symmetric matrix: A v = lambda v, orthonormal vectors, the values of Jacobi', () => {
    const rng = new Rng(2);
    for (const n of [1, 2, 7, 40]) {
      const rows = randomSymmetric(rng, n);
      const a = flat(rows);
      const { values, vectors } = symmetricEigen(a, n, true);
      expect(vectors).not.toBeNull();
      const v = vectors ?? new Float64Array();
      const jacobi = jacobiEigenvalues(rows).sort((p, q) => p - q);
      for (let i = 0; i < n; i++) {
        expect(Math.abs((values[i] as number) - (jacobi[i] as number))).toBeLessThan(1e-10);
        if (i > 0) expect(values[i] as number).toBeGreaterThanOrEqual(values[i - 1] as number);
        for (let r = 0; r < n; r++) {
          let av = 0;
          for (let k = 0; k < n; k++) av += entry(a, n, r, k) * entry(v, n, i, k);
          expect(Math.abs(av - (values[i] as number) * entry(v, n, i, r))).toBeLessThan(1e-10);
        }
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < n; k++) dot += entry(v, n, i, k) * entry(v, n, j, k);
          expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
      const valuesOnly = symmetricEigen(a, n, false);
      expect(valuesOnly.vectors).toBeNull();
      valuesOnly.values.forEach((value, i) => expect(Math.abs(value - (values[i] as number))).toBeLessThan(1e-10));
    }
  });

  it('handles repeated and zero eigenvalues', () => {
    const n = 6;
    const ones = flat(Array.from({ length: n }, () => new Array<number>(n).fill(1)));
    expect(Array.from(symmetricEigen(ones, n, true).values).map((x) => Math.round(x * 1e9) / 1e9 + 0)).toEqual([
      0, 0, 0, 0, 0, 6,
    ]);
    const identity = flat(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 3 : 0))));
    expect(Array.from(symmetricEigen(identity, n, false).values)).toEqual(new Array<number>(n).fill(3));
    expect(Array.from(symmetricEigen(new Float64Array(n * n), n, true).values)).toEqual(new Array<number>(n).fill(0));
  });

  it('refuses a non-finite matrix instead of iterating on NaN', () => {
    expect(() =>
      symmetricEigen(
        flat([
          [1, Number.NaN],
          [Number.NaN, 1],
        ]),
        2,
        true,
      ),
    ).toThrow(/non-finite/);
  });
});
