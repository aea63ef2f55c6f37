import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { SystemReport } from '@shared/system';
import { api } from '../api/client';
import { latestLoad } from '../latest';

/** What the engine process found: the backend it chose, the candidates it passed over, the GPU. */
export const useSystemStore = defineStore('system', () => {
  const report = ref<SystemReport | null>(null);
  const loader = latestLoad();

  function load(): Promise<void> {
    return loader.run(async (token) => {
      const next = await api.call('system.report', {});
      if (token.current) report.value = next;
    });
  }

  return { report, error: loader.error, loading: loader.loading, load };
});
