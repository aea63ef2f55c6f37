import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { SystemReport } from '../../../shared/system';
import { api } from '../api/client';

/** What the engine process found: the backend it chose, the candidates it passed over, the GPU. */
export const useSystemStore = defineStore('system', () => {
  const report = ref<SystemReport | null>(null);
  const error = ref<string | null>(null);
  const loading = ref(false);

  async function load(): Promise<void> {
    loading.value = true;
    error.value = null;
    try {
      report.value = await api.call('system.report', {});
    } catch (failure) {
      error.value = failure instanceof Error ? failure.message : String(failure);
    } finally {
      loading.value = false;
    }
  }

  return { report, error, loading, load };
});
