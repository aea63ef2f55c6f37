import { getAt } from '@shared/paths';
import type { RunFigures } from '@shared/run-query';
import type { Run } from '@shared/store-types';

/**
 * Parallel coordinates of runs: one axis per chosen config path and per final metric (and the latest
 * evaluation's natural and robust accuracy), one line per run. Numbers get value axes (log where they
 * span two orders of magnitude or more, as lambda does), anything else a category axis.
 */

export interface ParallelAxis {
  key: string;
  label: string;
  type: 'value' | 'log' | 'category';
  /** Category axes: the values in order. */
  categories: string[];
}

export interface ParallelModel {
  axes: ParallelAxis[];
  runIds: string[];
  /** rows[i][j]: run i on axis j (a number, a category name, or null where the run has none). */
  rows: (number | string | null)[][];
}

function valueOf(run: Run, key: string, figures: RunFigures | null): unknown {
  if (key === 'natural') return figures?.natural ?? null;
  if (key === 'robust') return figures?.robust ?? null;
  if (key.startsWith('summary.')) return run.summary?.[key.slice(8)] ?? null;
  return getAt(run.config, key.split('.')) ?? null;
}

export function buildParallel(
  runs: readonly Run[],
  figures: Record<string, RunFigures | null>,
  keys: readonly string[],
): ParallelModel {
  const raw = runs.map((run) => keys.map((key) => valueOf(run, key, figures[run.id] ?? null)));
  const axes = keys.map((key, j): ParallelAxis => {
    const column = raw.map((row) => row[j]).filter((v) => v !== null && v !== undefined);
    const numeric = column.length > 0 && column.every((v) => typeof v === 'number' && Number.isFinite(v));
    const label = key.replace(/^(summary|config)\./, '');
    if (numeric) {
      const values = column as number[];
      const min = Math.min(...values);
      const max = Math.max(...values);
      return { key, label, type: min > 0 && max / min >= 100 ? 'log' : 'value', categories: [] };
    }
    const categories = [...new Set(column.map((v) => String(v)))].sort();
    return { key, label, type: 'category', categories };
  });
  const rows = raw.map((row) =>
    row.map((v, j) => {
      if (v === null || v === undefined) return null;
      return axes[j]?.type === 'category' ? String(v) : typeof v === 'number' ? v : null;
    }),
  );
  return { axes, runIds: runs.map((run) => run.id), rows };
}

/**
 * The runs inside every brushed interval: `intervals[j]` lists axis j's brushed ranges (in data units;
 * category axes in category index units, as ECharts reports them); an axis without any keeps all.
 */
export function runsInIntervals(model: ParallelModel, intervals: Record<number, [number, number][]>): string[] {
  return model.runIds.filter((_, i) =>
    Object.entries(intervals).every(([axis, ranges]) => {
      if (ranges.length === 0) return true;
      const j = Number(axis);
      const value = model.rows[i]?.[j];
      if (value === null || value === undefined) return false;
      const position = typeof value === 'number' ? value : (model.axes[j]?.categories.indexOf(value) ?? -1);
      return ranges.some(([lo, hi]) => position >= Math.min(lo, hi) && position <= Math.max(lo, hi));
    }),
  );
}
