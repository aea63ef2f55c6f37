import { describe, expect, it } from 'vitest';
import { contourLevels, contourSegments, type Segment } from '../../src/renderer/src/charts/contours';

/** values[row][col] = f(xs[col], ys[row]). */
function sample(f: (x: number, y: number) => number, xs: number[], ys: number[]): number[][] {
  return ys.map((y) => xs.map((x) => f(x, y)));
}

const grid = (n: number, lo: number, hi: number) => Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));

describe('contour lines (marching squares)', () => {
  it('puts the level set of a linear function exactly where it is', () => {
    const xs = grid(5, -1, 1);
    const ys = grid(4, 0, 3);
    const segments = contourSegments(
      sample((x) => 2 * x + 1, xs, ys),
      xs,
      ys,
      1.5,
    );
    // 2x + 1 = 1.5 at x = 0.25: one vertical segment per row of cells.
    expect(segments).toHaveLength(ys.length - 1);
    for (const [a, b] of segments) {
      expect(a[0]).toBeCloseTo(0.25, 12);
      expect(b[0]).toBeCloseTo(0.25, 12);
    }
    const spans = segments
      .map(([a, b]): [number, number] => [Math.min(a[1], b[1]), Math.max(a[1], b[1])])
      .sort((p, q) => p[0] - q[0]);
    expect(spans).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
  });

  it('draws a closed curve around a minimum, every point on the level of a bilinear interpolation', () => {
    const xs = grid(21, -1, 1);
    const ys = grid(21, -1, 1);
    const f = (x: number, y: number) => x * x + y * y;
    const segments: Segment[] = contourSegments(sample(f, xs, ys), xs, ys, 0.47);
    expect(segments.length).toBeGreaterThan(20);
    // Every end point lies on a cell edge, at radius sqrt(0.5) up to the linear interpolation's error.
    for (const point of segments.flat()) expect(Math.hypot(point[0], point[1])).toBeCloseTo(Math.sqrt(0.47), 2);
    // Closed: every end point is shared by exactly two segments.
    const key = (p: readonly number[]) => `${p[0]?.toFixed(9)},${p[1]?.toFixed(9)}`;
    const counts = new Map<string, number>();
    for (const point of segments.flat()) counts.set(key(point), (counts.get(key(point)) ?? 0) + 1);
    expect(new Set(counts.values())).toEqual(new Set([2]));
  });

  it('leaves out cells with a missing sample, and levels outside the range', () => {
    const xs = [0, 1, 2];
    const ys = [0, 1];
    expect(
      contourSegments(
        [
          [0, 1, 2],
          [0, null, 2],
        ],
        xs,
        ys,
        0.5,
      ),
    ).toEqual([]);
    expect(
      contourSegments(
        [
          [0, 1, 2],
          [0, 1, 2],
        ],
        xs,
        ys,
        5,
      ),
    ).toEqual([]);
    expect(contourLevels(0, 1, 3)).toEqual([0.25, 0.5, 0.75]);
    expect(contourLevels(1, 1, 3)).toEqual([]);
  });
});
