import { Option, type Command } from 'commander';
import { METRICS_FORMATS, metricsCsv, type MetricsFormat } from '@shared/metric-csv';
import { fail, writeOutput } from '../output';
import { openExistingStore } from '../store-arg';

interface MetricsOptions {
  format: MetricsFormat;
  keys?: string;
  out?: string;
  dataDir?: string;
}

/** Every point, never downsampled: an export is the data, not a chart's view of it. */
const ALL_POINTS = Number.MAX_SAFE_INTEGER;

export function registerMetrics(program: Command): void {
  program
    .command('metrics')
    .description("a run's metric series, every point: CSV with one column per key (step first), or JSON")
    .argument('<run>', 'the run id (or a unique prefix)')
    .addOption(new Option('--format <format>', 'output format').choices(METRICS_FORMATS).default('csv'))
    .option('--keys <list>', 'comma-separated metric keys, in column order (default: every key the run recorded)')
    .option('--out <file>', 'write to a file instead of stdout')
    .option('--data-dir <dir>', 'where the experiment store lives (default ~/.mimir, or $MIMIR_HOME)')
    .action(async (run: string, options: MetricsOptions) => {
      try {
        const store = await openExistingStore(options.dataDir);
        try {
          const runId = store.resolveRunId(run);
          const recorded = store.listMetricKeys(runId);
          const asked = options.keys
            ?.split(',')
            .map((key) => key.trim())
            .filter((key) => key !== '');
          const unknown = (asked ?? []).filter((key) => !recorded.includes(key));
          if (unknown.length > 0) {
            throw new Error(
              `--keys: run ${runId} recorded no ${unknown.join(', ')}; its keys: ${recorded.join(', ') || 'none'}.`,
            );
          }
          const keys = asked && asked.length > 0 ? asked : recorded;
          const series = keys.length > 0 ? store.getMetricSeries([runId], keys, { maxPoints: ALL_POINTS }) : [];
          const text =
            options.format === 'csv'
              ? metricsCsv(series)
              : `${JSON.stringify({
                  runId,
                  series: series.map(({ key, steps, values, wallTimes }) => ({ key, steps, values, wallTimes })),
                })}\n`;
          await writeOutput(options.out, text);
        } finally {
          store.close();
        }
      } catch (error) {
        fail(error, false);
      }
    });
}
