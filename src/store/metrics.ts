import { MetricSeriesQuery, type MetricSeries } from '@shared/store-types';
import type { SqliteDatabase } from './database';
import { downsampleRows, type MetricRow } from './downsample';
import { parseInput } from './rows';

/** SQLite stores NaN as NULL anyway; +-Infinity would not survive JSON on its way to the renderer. */
function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

function prepare(db: SqliteDatabase) {
  return {
    insert: db.prepare(
      `INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time`,
    ),
    dropAfter: db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?'),
    // A skip-scan over the (run_id, key, step) key: one index seek per distinct key, not one row per point.
    keys: db
      .prepare(
        `WITH RECURSIVE k(key) AS (
           SELECT min(key) FROM metrics WHERE run_id = @runId
           UNION ALL
           SELECT (SELECT min(key) FROM metrics WHERE run_id = @runId AND key > k.key) FROM k WHERE k.key IS NOT NULL
         ) SELECT key FROM k WHERE key IS NOT NULL`,
      )
      .pluck(),
    seriesStats: db.prepare(
      `SELECT count(*) AS n, min(step) AS first, max(step) AS last FROM metrics
       WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ?`,
    ),
    seriesRows: db
      .prepare(
        `SELECT step, value, wall_time FROM metrics
         WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ? ORDER BY step`,
      )
      .raw(true),
  };
}

/** A run's metric points: written from its events, read as (downsampled) series. */
export class MetricsTable {
  private readonly db: SqliteDatabase;
  private readonly stmt: ReturnType<typeof prepare>;

  constructor(db: SqliteDatabase) {
    this.db = db;
    this.stmt = prepare(db);
  }

  /** Inside the caller's transaction. */
  record(runId: string, step: number, values: Record<string, number>, now: number): void {
    for (const [key, value] of Object.entries(values)) {
      this.stmt.insert.run(runId, key, step, finiteOrNull(value), now);
    }
  }

  /** Drops the points after `step` (a restart); returns how many. */
  dropAfter(runId: string, step: number): number {
    return this.stmt.dropAfter.run(runId, step).changes;
  }

  /** The metric keys a run has recorded, sorted. */
  listKeys(runId: string): string[] {
    return this.stmt.keys.all({ runId }) as string[];
  }

  /** One series per (run, key) pair, run-major, downsampled to at most `maxPoints` points each. */
  series(runIds: readonly string[], keys: readonly string[], query: MetricSeriesQuery = {}): MetricSeries[] {
    const q = parseInput(MetricSeriesQuery, query);
    const from = q.fromStep ?? Number.MIN_SAFE_INTEGER;
    const to = q.toStep ?? Number.MAX_SAFE_INTEGER;
    const read = this.db.transaction(() => {
      const series: MetricSeries[] = [];
      for (const runId of runIds) {
        for (const key of keys) {
          const stats = this.stmt.seriesStats.get(runId, key, from, to) as { n: number; first: number; last: number };
          const rows = this.stmt.seriesRows.iterate(runId, key, from, to) as IterableIterator<MetricRow>;
          if (stats.n <= q.maxPoints) {
            const columns = { steps: [] as number[], values: [] as (number | null)[], wallTimes: [] as number[] };
            for (const [step, value, wallTime] of rows) {
              columns.steps.push(step);
              columns.values.push(value);
              columns.wallTimes.push(wallTime);
            }
            series.push({ runId, key, ...columns, total: stats.n, downsampled: false });
          } else {
            const columns = downsampleRows(rows, stats.first, stats.last, q.maxPoints);
            series.push({ runId, key, ...columns, total: stats.n, downsampled: true });
          }
        }
      }
      return series;
    });
    // A read transaction: every series comes from the same snapshot while a job keeps writing.
    return read.deferred();
  }
}
