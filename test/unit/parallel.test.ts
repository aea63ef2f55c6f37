import { describe, expect, it } from 'vitest';
import { buildParallel, runsInIntervals } from '../../src/renderer/src/charts/parallel';
import type { Run } from '../../src/shared/store-types';

const run = (id: string, config: Record<string, unknown>, summary: Record<string, number> | null): Run =>
  ({ id, config, summary }) as unknown as Run;

const RUNS = [
  run('a', { mode: 'mimir', mi: { lambda: 1e-5 } }, { loss: 1.5 }),
  run('b', { mode: 'mimir', mi: { lambda: 1e-3 } }, { loss: 1.2 }),
  run('c', { mode: 'mae', mi: { lambda: 1e-3 } }, null),
];
const FIGURES = { a: { natural: 0.8, robust: 0.4 }, b: null, c: { natural: 0.7, robust: 0.3 } };

describe('parallel coordinates', () => {
  it('makes a log axis for lambda, a category axis for text, a value axis for metrics; missing values are null', () => {
    const model = buildParallel(RUNS, FIGURES, ['mi.lambda', 'mode', 'summary.loss', 'robust']);
    expect(model.axes.map((a) => [a.key, a.label, a.type, a.categories])).toEqual([
      ['mi.lambda', 'mi.lambda', 'log', []],
      ['mode', 'mode', 'category', ['mae', 'mimir']],
      ['summary.loss', 'loss', 'value', []],
      ['robust', 'robust', 'value', []],
    ]);
    expect(model.rows).toEqual([
      [1e-5, 'mimir', 1.5, 0.4],
      [1e-3, 'mimir', 1.2, null],
      [1e-3, 'mae', null, 0.3],
    ]);
  });

  it('keeps the runs inside every brushed interval, category axes by index', () => {
    const model = buildParallel(RUNS, FIGURES, ['mi.lambda', 'mode', 'summary.loss', 'robust']);
    expect(runsInIntervals(model, {})).toEqual(['a', 'b', 'c']);
    expect(runsInIntervals(model, { 0: [[5e-4, 2e-3]] })).toEqual(['b', 'c']);
    expect(runsInIntervals(model, { 0: [[5e-4, 2e-3]], 1: [[0.5, 1.5]] })).toEqual(['b']);
    // A run without a value on a brushed axis is out.
    expect(runsInIntervals(model, { 3: [[0, 1]] })).toEqual(['a', 'c']);
    expect(runsInIntervals(model, { 2: [[1.4, 1.0]], 0: [] })).toEqual(['b']);
  });
});
