import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { CheckpointEntry } from '@shared/api';
import type { CheckpointKind } from '@shared/checkpoint';
import { api } from '../api/client';
import { latestLoad } from '../latest';

/** The checkpoints the pickers and the checkpoints page offer, loaded on demand and refreshed when asked. */
export const useCheckpointsStore = defineStore('checkpoints', () => {
  const entries = ref<CheckpointEntry[]>([]);
  const loaded = ref(false);
  /** Each refresh asks again (a checkpoint may have appeared since an earlier request); only the latest answer counts. */
  const loader = latestLoad();

  function refresh(): Promise<void> {
    return loader.run(async (token) => {
      const listed = await api.call('checkpoints.list', {});
      if (!token.current) return;
      entries.value = listed;
      loaded.value = true;
    });
  }

  async function ensure(): Promise<void> {
    if (!loaded.value) await refresh();
  }

  function ofKind(kind: CheckpointKind | null): CheckpointEntry[] {
    return kind ? entries.value.filter((entry) => entry.kind === kind) : entries.value;
  }

  const byPath = computed(() => new Map(entries.value.map((entry) => [entry.path, entry])));

  return { entries, loaded, loading: loader.loading, error: loader.error, byPath, refresh, ensure, ofKind };
});

/** "MIMIR micro · mimir · step 24 (final)". */
export function checkpointLabel(entry: CheckpointEntry): string {
  const parts = [entry.name];
  if (entry.detail) parts.push(entry.detail);
  if (entry.step !== null) parts.push(`step ${entry.step}${entry.epoch !== null ? `, epoch ${entry.epoch}` : ''}`);
  return `${parts.join(' · ')}${entry.final ? ' (final)' : ''}${entry.origin === 'import' ? ' — imported' : ''}`;
}
