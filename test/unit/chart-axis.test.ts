import { describe, expect, it } from 'vitest';
import { constantSeriesBounds } from '../../src/renderer/src/charts/axis-range';
import { compactTick, tooltipBelow, wrapText } from '../../src/renderer/src/charts/chart-style';

describe('the value axis of a constant series', () => {
  it('spans a round, symmetric range around the value, so the line is flat in the middle', () => {
    for (const [value, min, max] of [
      [0.1, 0.09, 0.11],
      [86.6, 85.6, 87.6],
      [-2.5, -2.6, -2.4],
      [1.875e-5, 1.775e-5, 1.975e-5],
      [0, -1, 1],
      [12345, 11345, 13345],
    ] as const) {
      const bounds = constantSeriesBounds([value, value, value, null]) ?? { min: NaN, max: NaN };
      expect(bounds.min).toBeCloseTo(min, 12);
      expect(bounds.max).toBeCloseTo(max, 12);
      // Finite, ordered and centred: the collapsed (min = max) or NaN axis of the bug cannot pass.
      expect(Number.isFinite(bounds.min) && Number.isFinite(bounds.max)).toBe(true);
      expect(bounds.max - bounds.min).toBeGreaterThan(0);
      expect((bounds.min + bounds.max) / 2).toBeCloseTo(value, 12);
    }
  });

  it('treats values equal up to rounding as constant (a cosine schedule from lr to the same minLr)', () => {
    const lr = (1.5e-4 * 32) / 256;
    const bounds = constantSeriesBounds([lr, lr * (1 + 1e-15), lr]) ?? { min: NaN, max: NaN };
    expect(bounds.min).toBeLessThan(lr);
    expect(bounds.max).toBeGreaterThan(lr);
  });

  it('rounds the ends to the padding: 0.1 ± 0.01 reads 0.09, not 0.09000000000000001', () => {
    expect(constantSeriesBounds([0.1])).toEqual({ min: 0.09, max: 0.11 });
  });

  it('gives a decade either side on a log axis', () => {
    expect(constantSeriesBounds([0.5, 0.5], true)).toEqual({ min: 0.01, max: 10 });
  });

  it('leaves a varying, empty or all-missing series to ECharts', () => {
    expect(constantSeriesBounds([1, 2, 3])).toBeNull();
    expect(constantSeriesBounds([])).toBeNull();
    expect(constantSeriesBounds([null, Number.NaN])).toBeNull();
    // On a log scale only the positive values count.
    expect(constantSeriesBounds([-1, 2], true)).toEqual({ min: 0.1, max: 100 });
  });
});

describe('the title and run names drawn into a chart PNG', () => {
  it('wrap at spaces to the width', () => {
    const measure = (s: string) => s.length * 10;
    expect(wrapText('mimir lambda 1e-3 · seed 0', 130, measure)).toEqual(['mimir lambda', '1e-3 · seed 0']);
    expect(wrapText('a-very-long-single-word', 50, measure)).toEqual(['a-very-long-single-word']);
    expect(wrapText('', 50, measure)).toEqual([]);
  });
});

describe('axis ticks', () => {
  it('tell apart the close ticks of a constant series, in at most 4 significant digits', () => {
    const bounds = constantSeriesBounds([2 ** -10]) ?? { min: NaN, max: NaN };
    const step = (bounds.max - bounds.min) / 4;
    const ticks = [0, 1, 2, 3, 4].map((i) => compactTick(bounds.min + i * step));
    expect(new Set(ticks).size).toBe(5);
    expect(ticks).toEqual(['9.666e-4', '9.716e-4', '9.766e-4', '9.816e-4', '9.866e-4']);
    expect(compactTick(9.75e-4)).toBe('9.75e-4');
    expect(compactTick(0.25)).toBe('0.25');
    expect(compactTick(123456)).toBe('1.235e5');
    expect(compactTick(0)).toBe('0');
  });
});

describe('tooltip placement', () => {
  const place = tooltipBelow(28);
  const at = (x: number, y: number) =>
    place([x, y], null, null, null, { contentSize: [120, 60], viewSize: [400, 230] });

  it('never goes above the legend row, wherever the pointer is', () => {
    for (const y of [0, 5, 20, 27]) expect(at(100, y)[1]).toBeGreaterThanOrEqual(28);
  });

  it('sits beside the pointer, flipping left near the right edge, and stays inside the chart', () => {
    expect(at(100, 100)).toEqual([114, 114]);
    const [x, y] = at(350, 220);
    expect(x).toBe(350 - 14 - 120);
    expect(y + 60).toBeLessThanOrEqual(230);
    expect(at(20, 100)[0]).toBeGreaterThanOrEqual(0);
  });
});
