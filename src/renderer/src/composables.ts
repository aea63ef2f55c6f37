import { onBeforeUnmount, ref, watch, type Ref } from 'vue';

/** The current time, refreshed every `intervalMs` (for "3 min ago" and running clocks). */
export function useNow(intervalMs = 1000): Ref<number> {
  const now = ref(Date.now());
  const timer = setInterval(() => (now.value = Date.now()), intervalMs);
  onBeforeUnmount(() => clearInterval(timer));
  return now;
}

/** A value kept in localStorage under `key` (a UI preference such as the chart smoothing). */
export function useStoredPreference<T extends string | number | boolean>(key: string, fallback: T): Ref<T> {
  let initial = fallback;
  try {
    const stored = window.localStorage.getItem(key);
    if (stored !== null) {
      const parsed: unknown = JSON.parse(stored);
      if (typeof parsed === typeof fallback) initial = parsed as T;
    }
  } catch {
    // no storage, or a value from another version: keep the default
  }
  const value = ref(initial) as Ref<T>;
  watch(value, (next) => {
    try {
      window.localStorage.setItem(key, JSON.stringify(next));
    } catch {
      // storage full or disabled: the preference lasts this session only
    }
  });
  return value;
}
