import { shallowRef, watch, type Ref } from 'vue';
import { groupKey, meanStdByStep, seedlessName, type BandPoint } from '@shared/groups';
import type { Run } from '@shared/store-types';
import { api } from '../../api/client';
import { latestLoad } from '../../latest';

export interface SeedGroup {
  /** The members' shared name (the run's name without " · seed N") and n. */
  name: string;
  runIds: string[];
  /** Per metric key: the members' mean ± std at every step. */
  bands: Record<string, BandPoint[]>;
}

const MAX_POINTS = 2000;

/** "mimir lambda 1e-3 · seed 1" → "mimir lambda 1e-3": the name the seeds of a group share. */
export function groupDisplayName(runName: string, n: number): string {
  return `${seedlessName(runName)} (group, n=${n})`;
}

/**
 * The seed group of a run (the runs of its kind whose configs differ from its own only by seed), loaded
 * while `enabled`: its members and, per metric, their mean ± std per step. null when the run has no
 * other seed.
 */
export function useSeedGroup(run: Ref<Run | null>, enabled: Ref<boolean>) {
  const group = shallowRef<SeedGroup | null>(null);
  const loader = latestLoad();

  async function load(target: Run): Promise<void> {
    await loader.run(async (token) => {
      const candidates = await api.call('runs.list', { kind: target.kind, limit: 1000 });
      const parentIds = [...new Set(candidates.flatMap((r) => (r.parentRunId ? [r.parentRunId] : [])))];
      // A deleted parent has no group: its children then group by the checkpoint path they name.
      const found = await Promise.all(parentIds.map((id) => api.call('runs.get', { id }).catch(() => null)));
      const parents = new Map(found.flatMap((p) => (p ? [[p.id, p] as const] : [])));
      if (!token.current) return;
      const parentKeyOf = (id: string) => {
        const parent = parents.get(id);
        return parent ? groupKey(parent) : null;
      };
      const key = groupKey(target, parentKeyOf);
      const members = candidates.filter((r) => groupKey(r, parentKeyOf) === key);
      if (members.length < 2) {
        group.value = null;
        return;
      }
      const ids = members.map((r) => r.id);
      const keys = await api.call('runs.metricKeys', { ids });
      const series = keys.length ? await api.call('runs.metrics', { ids, keys, query: { maxPoints: MAX_POINTS } }) : [];
      if (!token.current) return;
      const bands: Record<string, BandPoint[]> = {};
      for (const metric of keys) bands[metric] = meanStdByStep(series.filter((s) => s.key === metric));
      group.value = { name: groupDisplayName(target.name, members.length), runIds: ids, bands };
    });
  }

  watch(
    () => [enabled.value, run.value?.id] as const,
    ([on]) => {
      if (on && run.value) void load(run.value);
      else {
        loader.invalidate();
        group.value = null;
      }
    },
    { immediate: true },
  );

  return { group, loading: loader.loading, error: loader.error, reload: () => run.value && load(run.value) };
}
