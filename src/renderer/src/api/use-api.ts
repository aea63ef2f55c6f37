import { onScopeDispose, ref, type Ref } from 'vue';
import { DOWNLOAD_PATH, type ApiInput, type ApiMethod, type ApiOutput } from '@shared/api';
import type { PushMessage } from '@shared/push';
import { errorMessage } from '../format';
import { useQuery, type Query } from '../query';
import { api, transportName } from './client';

/**
 * The composables through which components reach the API (components and views never import the
 * client): a query of one method (useQuery's latest-answer handling), an action with its pending flag
 * and error, and pushes for the component's lifetime. Loads of several calls live in api/requests.ts.
 */

/** Load `method` with `input()` whenever it changes; null loads nothing. */
export function useApiQuery<M extends ApiMethod>(method: M, input: () => ApiInput<M> | null): Query<ApiOutput<M>> {
  return useQuery(input, (value) => api.call(method, value));
}

export interface ApiAction<M extends ApiMethod> {
  /** The answer, or null when the call failed (then `error` says why). */
  run(input: ApiInput<M>): Promise<ApiOutput<M> | null>;
  pending: Ref<boolean>;
  error: Ref<string | null>;
}

/** A call the user starts (create, import, export): its pending flag and its failure for the view to show. */
export function useApiAction<M extends ApiMethod>(method: M): ApiAction<M> {
  const pending = ref(false);
  const error = ref<string | null>(null);
  return {
    pending,
    error,
    async run(input) {
      pending.value = true;
      error.value = null;
      try {
        return await api.call(method, input);
      } catch (failure) {
        error.value = errorMessage(failure);
        return null;
      } finally {
        pending.value = false;
      }
    },
  };
}

/** Receive the server's pushes while the calling component lives. */
export function useApiPush(listener: (message: PushMessage) => void): void {
  onScopeDispose(api.onPush(listener));
}

/**
 * Web mode: the address that downloads a file the workbench exported (the browser may be on another
 * machine than the files); null in the desktop app, where the file already is on this machine.
 */
export function exportDownloadHref(file: string): string | null {
  return transportName === 'web' ? `${DOWNLOAD_PATH}?file=${encodeURIComponent(file)}` : null;
}
