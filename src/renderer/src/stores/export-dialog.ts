import { defineStore } from 'pinia';
import { ref } from 'vue';

/** Which export the dialog is open for: a run's checkpoints, or one checkpoint; null when closed. */
export interface ExportRequest {
  runId?: string;
  checkpoint?: string;
}

export const useExportDialogStore = defineStore('export-dialog', () => {
  const request = ref<ExportRequest | null>(null);
  /** Bumped on every open, so the dialog starts afresh even for the same request. */
  const opened = ref(0);

  function open(next: ExportRequest): void {
    request.value = next;
    opened.value++;
  }

  function close(): void {
    request.value = null;
  }

  return { request, opened, open, close };
});
