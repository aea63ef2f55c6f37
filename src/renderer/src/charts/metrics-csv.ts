import { metricsCsv, metricsFileStem } from '@shared/metric-csv';
import { api } from '../api/client';
import { downloadText } from '../download';

/** Every stored point: the charts' series are downsampled, an export is not. */
const ALL_POINTS = Number.MAX_SAFE_INTEGER;

/**
 * Download a run's metric series as CSV (`mimir metrics`' format: step, one column per key),
 * fetched whole from the store; one key gives that chart's file, several the run's.
 */
export async function downloadMetricsCsv(runId: string, keys: readonly string[], key?: string): Promise<void> {
  const series = await api.call('runs.metrics', { ids: [runId], keys: [...keys], query: { maxPoints: ALL_POINTS } });
  downloadText(`${metricsFileStem(`run-${runId.slice(0, 8)}`, key)}.csv`, metricsCsv(series), 'text/csv');
}
