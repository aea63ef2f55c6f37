import { csvField } from './paper-table';
import type { MetricSeries } from './store-types';

/**
 * A run's metric series as one wide table (the CSV a researcher loads into pandas or a spreadsheet):
 * a header `step,<key>,<key>,...`, then one row per step any series has, in step order; a key
 * without a point at that step leaves its cell empty; a non-finite value (stored as null) is `NaN`.
 * Values keep every digit (JavaScript's shortest round-trip form).
 */

export type SeriesColumns = Pick<MetricSeries, 'key' | 'steps' | 'values'>;

export const METRICS_FORMATS = ['csv', 'json'] as const;
export type MetricsFormat = (typeof METRICS_FORMATS)[number];

export function metricsCsv(series: readonly SeriesColumns[]): string {
  const byStep = new Map<number, (string | undefined)[]>();
  series.forEach(({ steps, values }, column) => {
    steps.forEach((step, i) => {
      let row = byStep.get(step);
      if (!row) byStep.set(step, (row = new Array<string | undefined>(series.length)));
      const value = values[i];
      row[column] = value === null || value === undefined ? 'NaN' : String(value);
    });
  });
  const lines = [['step', ...series.map((s) => s.key)].map(csvField).join(',')];
  for (const step of [...byStep.keys()].sort((a, b) => a - b)) {
    const row = byStep.get(step) ?? [];
    lines.push([String(step), ...series.map((_, column) => row[column] ?? '')].join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** A file-name-safe stem for a run's metrics export, e.g. `mimir-3f2a9c-metrics`. */
export function metricsFileStem(runName: string, key?: string): string {
  const safe = (text: string) =>
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '');
  return [safe(runName) || 'run', key ? safe(key) : 'metrics'].filter((part) => part !== '').join('-');
}
