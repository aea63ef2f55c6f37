import { computed, ref, watch, type Ref } from 'vue';
import type { JobKind } from '@shared/engine-protocol';
import type { RunBackend } from '@shared/system';
import { useApiQuery } from '../api/use-api';
import { errorMessage } from '../format';
import { useRunsStore } from '../stores/runs';
import { useSystemStore } from '../stores/system';
import { estimateRun, measuringConfig, workOf, type Estimate } from './estimate';

export type EstimateState =
  | { state: 'known'; estimate: Estimate }
  | { state: 'no-work' }
  | { state: 'no-measurement'; backend: RunBackend | null; canMeasure: boolean }
  | { state: 'measuring'; runName: string };

/**
 * The new-run form's time estimate (forms/estimate.ts) from this machine's finished runs of the kind,
 * and the "measure" action: a short run of the same kind, model and backend, after which it is known.
 */
export function useRunEstimate(kind: Ref<JobKind>, config: Ref<Record<string, unknown>>, name: Ref<string>) {
  const system = useSystemStore();
  const runs = useRunsStore();
  const finished = useApiQuery('runs.list', () => ({ kind: [kind.value], status: 'done' as const, limit: 200 }));
  const backend = computed<RunBackend | null>(() => {
    const engine = config.value.engine;
    if (typeof engine === 'object' && engine !== null && (engine as { name?: unknown }).name === 'torch')
      return 'torch';
    return system.report?.chosen ?? null;
  });
  const measuringId = ref<string | null>(null);
  const measureError = ref<string | null>(null);
  const measuringRun = computed(() => (measuringId.value ? (runs.byId[measuringId.value] ?? null) : null));
  watch(
    () => measuringRun.value?.status,
    (status) => {
      if (!status || status === 'queued' || status === 'running') return;
      if (status !== 'done')
        measureError.value = `The measuring run ended ${status}: ${measuringRun.value?.error ?? ''}`;
      measuringId.value = null;
      void finished.reload();
    },
  );

  const state = computed<EstimateState>(() => {
    if (measuringRun.value) return { state: 'measuring', runName: measuringRun.value.name };
    if (workOf(kind.value, config.value) === null) return { state: 'no-work' };
    const estimate = backend.value
      ? estimateRun(kind.value, config.value, backend.value, finished.data.value ?? [])
      : null;
    if (estimate) return { state: 'known', estimate };
    return {
      state: 'no-measurement',
      backend: backend.value,
      canMeasure: measuringConfig(kind.value, config.value) !== null,
    };
  });

  async function measure(): Promise<void> {
    const measured = measuringConfig(kind.value, config.value);
    if (!measured) return;
    measureError.value = null;
    try {
      const run = await runs.create({ kind: kind.value, name: `measure · ${name.value}`, config: measured });
      measuringId.value = run.id;
    } catch (failure) {
      measureError.value = `Cannot measure: ${errorMessage(failure)}`;
    }
  }

  return { state, measure, measureError, loadError: finished.error };
}
