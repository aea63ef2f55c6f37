import { ref, type Ref } from 'vue';
import { errorMessage } from './format';

/**
 * Renderer data loading keeps only the latest answer. Each load takes a token; beginning another load
 * (the user filtered, paged, switched run) or invalidating (the view closed) makes every earlier
 * token stale, and an answer that arrives with a stale token is dropped, so a slow earlier response
 * can never overwrite a later one. Check `token.current` after every await before writing state.
 */
export interface LoadToken {
  readonly current: boolean;
}

export interface LatestOnly {
  /** Start a load: every earlier token stops being current. */
  begin(): LoadToken;
  /** Make every outstanding token stale. */
  invalidate(): void;
}

export function latestOnly(): LatestOnly {
  let latest = 0;
  return {
    begin() {
      const mine = ++latest;
      return {
        get current() {
          return mine === latest;
        },
      };
    },
    invalidate() {
      latest++;
    },
  };
}

export interface LatestLoad extends LatestOnly {
  /** True while the latest load runs. */
  loading: Ref<boolean>;
  /** The latest load's failure, or null. */
  error: Ref<string | null>;
  /**
   * Run `load` with a fresh token, keeping `loading` and `error` for the latest load only: an earlier
   * load that finishes or fails later changes neither.
   */
  run(load: (token: LoadToken) => Promise<void>): Promise<void>;
}

/** latestOnly() with the loading flag and error message a view shows for its latest load. */
export function latestLoad(): LatestLoad {
  const tokens = latestOnly();
  const loading = ref(false);
  const error = ref<string | null>(null);
  return {
    begin: tokens.begin,
    invalidate() {
      tokens.invalidate();
      loading.value = false;
    },
    loading,
    error,
    async run(load) {
      const token = tokens.begin();
      loading.value = true;
      error.value = null;
      try {
        await load(token);
      } catch (failure) {
        if (token.current) error.value = errorMessage(failure);
      } finally {
        if (token.current) loading.value = false;
      }
    },
  };
}
