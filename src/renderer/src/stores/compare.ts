import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import type { Evaluation, MetricSeries, Run } from '@shared/store-types';
import { api } from '../api/client';
import { latestLoad } from '../latest';
import type { EvaluationReport } from '@shared/evaluation';
import { reportOf } from '../evaluation-info';
import { useRunsStore } from './runs';

/** The evaluation shown for a run in the comparison: the newest of its model (or its fine-tuned children). */
export interface RunEvaluation {
  runId: string;
  /** The evaluation run, and the model run it evaluated (the run itself, or a fine-tuning child). */
  evaluation: Evaluation;
  report: EvaluationReport;
  modelRunId: string;
  /** How many evaluations were found for this run. */
  count: number;
}

const MAX_POINTS = 2000;

/**
 * Two or more runs side by side: their metric series on shared axes, their evaluations, and (through
 * stores/previews) their preview snapshots. Metrics are loaded once per comparison and refreshed on demand.
 */
export const useCompareStore = defineStore('compare', () => {
  const runs = useRunsStore();
  const ids = ref<string[]>([]);
  const keys = ref<string[]>([]);
  /** series[key][runId] */
  const series = shallowRef<Record<string, Record<string, MetricSeries>>>({});
  const evaluations = shallowRef<Record<string, RunEvaluation | null>>({});
  /** Changing the compared runs drops the answers for the earlier selection. */
  const loader = latestLoad();

  const compared = computed<Run[]>(() =>
    ids.value.map((id) => runs.byId[id]).filter((run): run is Run => run !== undefined),
  );

  async function evaluationOf(run: Run): Promise<RunEvaluation | null> {
    // A pre-training run's models are its fine-tuning children; a fine-tuning run is its own model.
    const modelIds =
      run.kind === 'pretrain'
        ? (await api.call('runs.list', { parentRunId: run.id, kind: 'finetune', limit: 100 })).map((child) => child.id)
        : run.kind === 'finetune'
          ? [run.id]
          : [];
    const found: { evaluation: Evaluation; modelRunId: string }[] = [];
    for (const modelRunId of modelIds) {
      for (const evaluation of await api.call('evaluations.list', { modelRunId }))
        found.push({ evaluation, modelRunId });
    }
    if (run.kind === 'evaluate') {
      for (const evaluation of await api.call('evaluations.list', { runId: run.id }))
        found.push({ evaluation, modelRunId: run.parentRunId ?? run.id });
    }
    found.sort((a, b) => b.evaluation.createdAt - a.evaluation.createdAt);
    for (const { evaluation, modelRunId } of found) {
      const report = reportOf(evaluation);
      if (report) return { runId: run.id, evaluation, report, modelRunId, count: found.length };
    }
    return null;
  }

  function load(next: string[]): Promise<void> {
    ids.value = next;
    keys.value = [];
    series.value = {};
    evaluations.value = {};
    if (next.length === 0) {
      loader.invalidate();
      loader.error.value = null;
      return Promise.resolve();
    }
    return loader.run(async (token) => {
      const fetched = await Promise.all(next.map((id) => runs.fetchRun(id)));
      const metricKeys = await api.call('runs.metricKeys', { ids: next });
      if (!token.current) return;
      keys.value = metricKeys;
      if (metricKeys.length > 0) {
        const all = await api.call('runs.metrics', { ids: next, keys: metricKeys, query: { maxPoints: MAX_POINTS } });
        if (!token.current) return;
        const grouped: Record<string, Record<string, MetricSeries>> = {};
        for (const one of all) (grouped[one.key] ??= {})[one.runId] = one;
        series.value = grouped;
      }
      const found = await Promise.all(fetched.map((run) => evaluationOf(run).catch(() => null)));
      if (!token.current) return;
      evaluations.value = Object.fromEntries(fetched.map((run, i) => [run.id, found[i] ?? null]));
    });
  }

  return { ids, keys, series, evaluations, loading: loader.loading, error: loader.error, compared, load };
});
