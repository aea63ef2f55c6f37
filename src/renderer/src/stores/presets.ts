import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { RunPreset } from '@shared/presets';
import { api } from '../api/client';
import { errorMessage } from '../format';

/** The new-run form's starting points (quick demos, the paper's recipe), from the app. */
export const usePresetsStore = defineStore('presets', () => {
  const presets = ref<RunPreset[]>([]);
  const error = ref<string | null>(null);
  let loading: Promise<void> | null = null;

  function load(): Promise<void> {
    loading ??= api
      .call('presets.list', {})
      .then((list) => {
        presets.value = list;
        error.value = null;
      })
      .catch((failure: unknown) => {
        error.value = errorMessage(failure);
        loading = null;
      });
    return loading;
  }

  function byId(id: string): RunPreset | undefined {
    return presets.value.find((preset) => preset.id === id);
  }

  return { presets, error, load, byId };
});
