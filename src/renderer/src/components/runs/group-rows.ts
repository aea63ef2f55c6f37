import { formatMeanStd, groupKey, groupRuns, meanStd, seedlessName, type MeanStd } from '@shared/groups';
import type { RunFigures } from '@shared/run-query';
import type { Run } from '@shared/store-types';
import { formatMetric } from '../../format';

/**
 * The runs table grouped by seed: runs whose configs differ only by seed collapse into one row with
 * mean ± sample std (and n) in each numeric column, as the paper's Table II reports them.
 */
export const NUMERIC_COLUMNS = ['imagesPerSecond', 'loss', 'mi', 'natural', 'robust'] as const;
export type NumericColumn = (typeof NUMERIC_COLUMNS)[number];

export function isNumericColumn(key: string): key is NumericColumn {
  return (NUMERIC_COLUMNS as readonly string[]).includes(key);
}

/** The number a run's numeric cell shows (the same one its group's mean is taken over). */
export function numericCell(run: Run, key: NumericColumn, figures: RunFigures | null): number | null {
  switch (key) {
    case 'imagesPerSecond':
      return run.imagesPerSecond;
    case 'loss':
      return run.summary?.loss ?? run.summary?.train_loss ?? null;
    case 'mi':
      return run.summary?.mi ?? null;
    case 'natural':
      return figures?.natural ?? null;
    case 'robust':
      return figures?.robust ?? null;
  }
}

/** The table's sort (stores/runs' RunSort; a column key and a direction). */
export interface TableSort {
  key: string;
  direction: 'asc' | 'desc';
}

export interface GroupRow {
  type: 'group';
  key: string;
  /** The members' shared name: the first member's without " · seed N". */
  name: string;
  runs: Run[];
  stats: Record<NumericColumn, MeanStd | null>;
}
export interface SingleRow {
  type: 'run';
  run: Run;
}
export type TableRow = GroupRow | SingleRow;

/** "86.6 ± 0.3" for accuracies (in percent), "1.234 ± 0.01234" (4 significant digits) for the rest. */
export function meanStdText(stat: MeanStd | null, key: NumericColumn): string {
  if (stat === null) return '–';
  if (key === 'natural' || key === 'robust') return formatMeanStd(stat, { scale: 100, digits: 1 });
  return stat.std === null ? formatMetric(stat.mean) : `${formatMetric(stat.mean)} ± ${formatMetric(stat.std)}`;
}

function rowValue(row: TableRow, key: NumericColumn, figures: Record<string, RunFigures | null>): number | null {
  return row.type === 'group' ? (row.stats[key]?.mean ?? null) : numericCell(row.run, key, figures[row.run.id] ?? null);
}

/**
 * `rows` (already filtered and sorted) grouped by seed: a group of two or more becomes one row, a run
 * without other seeds stays a run row. A numeric sort orders the rows by their (mean) value, missing
 * values last whatever the direction; any other sort keeps the order of each group's first member.
 */
export function groupTableRows(
  rows: readonly Run[],
  figures: Record<string, RunFigures | null>,
  sort: TableSort,
  parentKeyOf: (parentRunId: string) => string | null,
): TableRow[] {
  const table: TableRow[] = groupRuns(rows, parentKeyOf).map((group) => {
    const first = group.runs[0];
    if (group.runs.length < 2 || !first) return { type: 'run', run: first as Run };
    const stats = Object.fromEntries(
      NUMERIC_COLUMNS.map((key) => [
        key,
        meanStd(group.runs.map((run) => numericCell(run, key, figures[run.id] ?? null))),
      ]),
    ) as Record<NumericColumn, MeanStd | null>;
    return {
      type: 'group',
      key: group.key,
      name: seedlessName(first.name),
      runs: group.runs,
      stats,
    };
  });
  const key = sort.key;
  if (!isNumericColumn(key)) return table;
  const sign = sort.direction === 'asc' ? 1 : -1;
  return table
    .map((row, index) => ({ row, index, value: rowValue(row, key, figures) }))
    .sort((a, b) => {
      if (a.value === null || b.value === null)
        return a.value === b.value ? a.index - b.index : a.value === null ? 1 : -1;
      return sign * (a.value - b.value) || a.index - b.index;
    })
    .map(({ row }) => row);
}

/** The group key of a run's parent, for grouping fine-tunings by their pre-training's group. */
export function parentKeyFrom(byId: Record<string, Run>): (parentRunId: string) => string | null {
  return (id) => {
    const parent = byId[id];
    return parent ? groupKey(parent) : null;
  };
}
