import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { Run } from '@shared/store-types';
import { errorMessage } from '../format';
import { currentRoute, navigate } from '../router';
import { useNoticesStore } from './notices';
import { useRunsStore } from './runs';

/**
 * What a user does to a run from the table or the run page, with the outcome reported as a notice,
 * and the delete confirmation both places share.
 */
export const useRunActionsStore = defineStore('run-actions', () => {
  const runs = useRunsStore();
  const notices = useNoticesStore();
  const pendingDelete = ref<Run | null>(null);
  const busy = ref<string[]>([]);

  async function guarded(run: Run, action: () => Promise<unknown>, done?: string): Promise<void> {
    busy.value = [...busy.value, run.id];
    try {
      await action();
      if (done) notices.show('info', done);
    } catch (failure) {
      notices.show('error', errorMessage(failure));
    } finally {
      busy.value = busy.value.filter((id) => id !== run.id);
    }
  }

  function isBusy(run: Run): boolean {
    return busy.value.includes(run.id);
  }

  const cancel = (run: Run) => guarded(run, () => runs.cancel(run.id), `Cancelling “${run.name}”.`);
  const resume = (run: Run) =>
    guarded(run, () => runs.resume(run.id), `“${run.name}” is queued; it continues from its last checkpoint.`);

  function askDelete(run: Run): void {
    pendingDelete.value = run;
  }

  async function confirmDelete(deleteFiles: boolean): Promise<void> {
    const run = pendingDelete.value;
    pendingDelete.value = null;
    if (!run) return;
    await guarded(
      run,
      () => runs.remove(run.id, deleteFiles),
      `Deleted “${run.name}”${deleteFiles ? ' and its files' : ''}.`,
    );
    const route = currentRoute.value;
    if (route.name === 'run' && route.id === run.id && !runs.byId[run.id]) navigate({ name: 'runs' });
  }

  function duplicate(run: Run): void {
    navigate({ name: 'new', kind: run.kind, preset: null, from: run.id });
  }

  /** Open the new-run form for a `kind` run that starts from this run's last checkpoint. */
  function startFrom(run: Run, kind: 'finetune' | 'evaluate' | 'landscape'): void {
    navigate({ name: 'new', kind, preset: null, from: null, parent: run.id });
  }

  return { pendingDelete, busy, isBusy, cancel, resume, askDelete, confirmDelete, duplicate, startFrom };
});
