import { defineStore } from 'pinia';
import { ref } from 'vue';

/** Which runs the paper-table dialog is open for (null: closed), and whether it starts grouped. */
export const usePaperTableStore = defineStore('paper-table', () => {
  const runIds = ref<string[] | null>(null);
  const group = ref(true);
  /** Bumped on every open, so the dialog rebuilds even for the same runs. */
  const opened = ref(0);

  function open(ids: string[], grouped = true): void {
    runIds.value = [...ids];
    group.value = grouped;
    opened.value++;
  }

  function close(): void {
    runIds.value = null;
  }

  return { runIds, group, opened, open, close };
});
