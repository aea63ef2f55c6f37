import { describe, expect, it } from 'vitest';
import { sincosPosEmbed } from '../../../src/engine/model';

/**
 * MAE's get_2d_sincos_pos_embed, entry by entry: for patch (row i, column j) of the grid and
 * embed_dim D, with w = 10000^(-k / (D/4)):
 *   [k]           = sin(j * w_k),  [D/4 + k]   = cos(j * w_k)     (first half: the w coordinate)
 *   [D/2 + k]     = sin(i * w_k),  [3D/4 + k]  = cos(i * w_k)     (second half: the h coordinate)
 */
function maeEntry(dim: number, i: number, j: number, index: number): number {
  const q = dim / 4;
  const half = Math.floor(index / (dim / 2)); // 0: w coordinate (column j), 1: h coordinate (row i)
  const pos = half === 0 ? j : i;
  const within = index % (dim / 2);
  const k = within % q;
  const omega = 1 / Math.pow(10000, k / q);
  return within < q ? Math.sin(pos * omega) : Math.cos(pos * omega);
}

describe('sincosPosEmbed', () => {
  it('matches the MAE formula and has a zero cls row', () => {
    for (const [dim, grid] of [
      [192, 16],
      [128, 16],
      [32, 4],
    ] as const) {
      const table = sincosPosEmbed(dim, grid);
      expect(table.length).toBe((1 + grid * grid) * dim);
      expect(Array.from(table.subarray(0, dim)).every((v) => v === 0)).toBe(true);
      const probes = [
        [0, 0, 0],
        [0, 1, 0],
        [0, 1, dim / 4],
        [3, 2, dim / 2 + 1],
        [grid - 1, grid - 2, dim - 1],
        [2, grid - 1, dim / 4 - 1],
        [1, 0, (3 * dim) / 4 + 2],
      ];
      for (const [i, j, index] of probes) {
        const value = table[(1 + (i ?? 0) * grid + (j ?? 0)) * dim + (index ?? 0)] ?? NaN;
        expect(value).toBeCloseTo(maeEntry(dim, i ?? 0, j ?? 0, index ?? 0), 6);
      }
    }
  });

  it('puts the column in the first half: the first row of patches differs only there', () => {
    const dim = 32;
    const table = sincosPosEmbed(dim, 4);
    const patch = (i: number, j: number) => Array.from(table.subarray((1 + i * 4 + j) * dim, (2 + i * 4 + j) * dim));
    const a = patch(0, 0);
    const b = patch(0, 3);
    expect(a.slice(dim / 2)).toEqual(b.slice(dim / 2));
    expect(a.slice(0, dim / 2)).not.toEqual(b.slice(0, dim / 2));
    // Patch (0, 0): sin 0 = 0, cos 0 = 1.
    expect(a.slice(0, 8)).toEqual(new Array(8).fill(0));
    expect(a.slice(8, 16)).toEqual(new Array(8).fill(1));
  });

  it('rejects a width not divisible by 4', () => {
    expect(() => sincosPosEmbed(30, 4)).toThrow(/divisible by 4/);
  });
});
