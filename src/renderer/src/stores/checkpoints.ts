import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { CheckpointEntry } from '../../../shared/api';
import type { CheckpointKind } from '../../../shared/checkpoint';
import { api } from '../api/client';
import { errorMessage } from '../format';

/** The checkpoints the pickers and the checkpoints page offer, loaded on demand and refreshed when asked. */
export const useCheckpointsStore = defineStore('checkpoints', () => {
  const entries = ref<CheckpointEntry[]>([]);
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);
  let pending: Promise<void> | null = null;

  async function refresh(): Promise<void> {
    pending ??= (async () => {
      loading.value = true;
      try {
        entries.value = await api.call('checkpoints.list', {});
        error.value = null;
        loaded.value = true;
      } catch (failure) {
        error.value = errorMessage(failure);
      } finally {
        loading.value = false;
        pending = null;
      }
    })();
    return pending;
  }

  async function ensure(): Promise<void> {
    if (!loaded.value) await refresh();
  }

  function ofKind(kind: CheckpointKind | null): CheckpointEntry[] {
    return kind ? entries.value.filter((entry) => entry.kind === kind) : entries.value;
  }

  const byPath = computed(() => new Map(entries.value.map((entry) => [entry.path, entry])));

  return { entries, loaded, loading, error, byPath, refresh, ensure, ofKind };
});

/** "MIMIR micro · mimir · step 24 (final)". */
export function checkpointLabel(entry: CheckpointEntry): string {
  const parts = [entry.name];
  if (entry.detail) parts.push(entry.detail);
  if (entry.step !== null) parts.push(`step ${entry.step}${entry.epoch !== null ? `, epoch ${entry.epoch}` : ''}`);
  return `${parts.join(' · ')}${entry.final ? ' (final)' : ''}${entry.origin === 'import' ? ' — imported' : ''}`;
}
