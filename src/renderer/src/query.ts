import { onScopeDispose, shallowRef, watch, type Ref, type ShallowRef } from 'vue';
import { latestLoad } from './latest';

/** What a view shows of one load: the latest answer, whether it is coming, and why it failed. */
export interface Query<T> {
  /** The latest input's answer; null before it arrives, after a failure, and while there is no input. */
  readonly data: ShallowRef<T | null>;
  /** True while the latest load runs. */
  readonly loading: Ref<boolean>;
  /** The latest load's failure, or null. */
  readonly error: Ref<string | null>;
  /** The latest input has been answered (or has failed): "nothing found" can be said. */
  readonly loaded: Ref<boolean>;
  /** Load the same input again (it changed on the server): the answer shown stays until the new one arrives. */
  reload(): Promise<void>;
}

/**
 * The one way a view loads data: `fetch(input())` whenever the input changes (compared by value), with
 * only the latest answer kept (latestLoad): a slow answer to an earlier input, or one arriving after the
 * view closed, is dropped. A new input clears the answer shown (it was about something else); an input
 * of null loads nothing. The loads stop with the component (or effect scope) that made the query.
 */
export function useQuery<I, T>(input: () => I | null, fetch: (input: I) => Promise<T>): Query<T> {
  const loader = latestLoad();
  const data = shallowRef<T | null>(null);
  const loaded = shallowRef(false);
  let current: I | null = null;

  async function load(): Promise<void> {
    const asked = current;
    if (asked === null) {
      loader.invalidate();
      loader.error.value = null;
      return;
    }
    await loader.run(async (token) => {
      try {
        const answer = await fetch(asked);
        if (token.current) data.value = answer;
      } catch (failure) {
        if (token.current) data.value = null;
        throw failure;
      } finally {
        if (token.current) loaded.value = true;
      }
    });
  }

  watch(
    () => {
      const value = input();
      return { value, key: value === null ? null : JSON.stringify(value) };
    },
    (next, previous) => {
      if (previous && next.key === previous.key) return;
      current = next.value;
      data.value = null;
      loaded.value = false;
      void load();
    },
    { immediate: true },
  );
  onScopeDispose(() => loader.invalidate());

  return { data, loading: loader.loading, error: loader.error, loaded, reload: load };
}
