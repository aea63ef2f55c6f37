/** One stored metric point as SQLite returns it: [step, value (null = non-finite), wall_time]. */
export type MetricRow = [step: number, value: number | null, wallTime: number];

export interface Columns {
  steps: number[];
  values: (number | null)[];
  wallTimes: number[];
}

/**
 * Reduce a series (rows in increasing step order, `count` of them, steps from `firstStep` to
 * `lastStep`) to at most `maxPoints` points: the first and last point, and in each of
 * (maxPoints - 2) / 2 equal step intervals the points with the smallest and largest value. A bucket
 * holding non-finite values (null) also keeps the first of them, so a divergence stays visible.
 * One pass, constant memory beyond the output: a 1M-point series never sits in memory.
 */
export function downsampleRows(
  rows: Iterable<MetricRow>,
  firstStep: number,
  lastStep: number,
  maxPoints: number,
): Columns {
  const out: Columns = { steps: [], values: [], wallTimes: [] };
  const buckets = Math.max(1, Math.floor((maxPoints - 2) / 2));
  const width = (lastStep - firstStep + 1) / buckets;

  let bucket = -1;
  let min: MetricRow | null = null;
  let max: MetricRow | null = null;
  let nonFinite: MetricRow | null = null;
  let first: MetricRow | null = null;
  let last: MetricRow | null = null;

  const push = (row: MetricRow): void => {
    out.steps.push(row[0]);
    out.values.push(row[1]);
    out.wallTimes.push(row[2]);
  };
  const flush = (): void => {
    const kept = [min, max, nonFinite]
      .filter((row): row is MetricRow => row !== null && row !== first)
      .sort((a, b) => a[0] - b[0]);
    let previous = Number.NaN;
    for (const row of kept) {
      if (row[0] !== previous) push(row);
      previous = row[0];
    }
    min = max = nonFinite = null;
  };

  for (const row of rows) {
    if (first === null) {
      first = row;
      push(row);
    }
    if (last !== null) {
      // The previous row is not the last one: it may be a bucket's extreme.
      const b = Math.min(buckets - 1, Math.floor((last[0] - firstStep) / width));
      if (b !== bucket) {
        flush();
        bucket = b;
      }
      consider(last);
    }
    last = row;
  }
  flush();
  if (last !== null && last !== first) push(last);
  return out;

  function consider(row: MetricRow): void {
    const value = row[1];
    if (value === null) {
      nonFinite ??= row;
      return;
    }
    if (min === null || value < (min[1] as number)) min = row;
    if (max === null || value > (max[1] as number)) max = row;
  }
}
