import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import type { PushMessage } from '@shared/push';
import { lastKeptStep, type MetricsEvent } from '@shared/run-events';
import type { LogEntry, MetricSeries } from '@shared/store-types';
import { api } from '../api/client';
import { errorMessage } from '../format';
import { latestOnly, type LoadToken } from '../latest';
import { useRunsStore } from './runs';

/** One metric's points as the charts read them (mutated in place; `revision` says when). */
export interface SeriesData {
  steps: number[];
  values: (number | null)[];
  /** Some of the stored points were left out by the store's downsampling. */
  downsampled: boolean;
}

const MAX_POINTS = 2000;
const MAX_LOG_LINES = 2000;
const LOG_PAGE = 5000;
/** Pushes add points at once; a fetch from the store at most this often fills any gap the socket left. */
const CATCH_UP_MS = 3000;

/** The metrics and log of the run the run page shows, loaded then kept live (previews: stores/previews). */
export const useRunDetailsStore = defineStore('run-details', () => {
  const runs = useRunsStore();
  const runId = ref<string | null>(null);
  const notFound = ref(false);
  const error = ref<string | null>(null);
  const metricKeys = ref<string[]>([]);
  /** The series by key; the object is replaced when keys change, its arrays grow in place. */
  const series = shallowRef<Record<string, SeriesData>>({});
  const revision = ref(0);
  const metricsLoaded = ref(false);
  const logs = shallowRef<LogEntry[]>([]);
  /** A token per open(): answers for a run left meanwhile are dropped. */
  const sessions = latestOnly();
  let session: LoadToken = sessions.begin();
  /** Increases with every restart of the run: answers asked for before one may hold the old attempt. */
  let attempt = 0;
  let catchUpTimer: ReturnType<typeof setTimeout> | null = null;
  let lastCatchUp = 0;
  let logTimer: ReturnType<typeof setTimeout> | null = null;

  const run = computed(() => (runId.value ? (runs.byId[runId.value] ?? null) : null));

  function reset(): void {
    metricKeys.value = [];
    series.value = {};
    revision.value++;
    metricsLoaded.value = false;
    logs.value = [];
    notFound.value = false;
    error.value = null;
    if (catchUpTimer) clearTimeout(catchUpTimer);
    if (logTimer) clearTimeout(logTimer);
    catchUpTimer = null;
    logTimer = null;
  }

  async function open(id: string): Promise<void> {
    const mine = (session = sessions.begin());
    runId.value = id;
    reset();
    try {
      await runs.fetchRun(id);
    } catch (failure) {
      if (!mine.current) return;
      notFound.value = true;
      error.value = errorMessage(failure);
      return;
    }
    await Promise.all([loadMetrics(mine), loadLogs(mine)]);
  }

  function close(): void {
    sessions.invalidate();
    runId.value = null;
    reset();
  }

  // ---- metrics ----------------------------------------------------------------------------------------

  function merge(fetched: MetricSeries[]): void {
    let changed = false;
    const next = { ...series.value };
    for (const incoming of fetched) {
      const current = next[incoming.key];
      if (!current) {
        next[incoming.key] = {
          steps: [...incoming.steps],
          values: [...incoming.values],
          downsampled: incoming.downsampled,
        };
        changed = true;
        continue;
      }
      const last = current.steps.at(-1) ?? -Infinity;
      incoming.steps.forEach((step, i) => {
        if (step > last) {
          current.steps.push(step);
          current.values.push(incoming.values[i] ?? null);
          changed = true;
        }
      });
      current.downsampled ||= incoming.downsampled;
    }
    series.value = next;
    if (changed) revision.value++;
  }

  async function loadMetrics(mine: LoadToken): Promise<void> {
    const id = runId.value;
    if (!id) return;
    const asked = attempt;
    try {
      const keys = await api.call('runs.metricKeys', { ids: [id] });
      if (!mine.current) return;
      if (asked !== attempt) return loadMetrics(mine);
      const fetched =
        keys.length > 0 ? await api.call('runs.metrics', { ids: [id], keys, query: { maxPoints: MAX_POINTS } }) : [];
      if (!mine.current) return;
      if (asked !== attempt) return loadMetrics(mine);
      // Keys and points together: a chart never shows its key with the points still on their way.
      metricKeys.value = keys;
      series.value = {};
      merge(fetched);
      metricsLoaded.value = true;
    } catch (failure) {
      if (mine.current) error.value = errorMessage(failure);
    }
  }

  /** Fetch what the store holds after each series' last point (grouped by that step, one call a group). */
  async function catchUp(): Promise<void> {
    const id = runId.value;
    const mine = session;
    const asked = attempt;
    if (!id) return;
    lastCatchUp = Date.now();
    try {
      const keys = await api.call('runs.metricKeys', { ids: [id] });
      if (!mine.current) return;
      const groups = new Map<number, string[]>();
      for (const key of keys) {
        const from = (series.value[key]?.steps.at(-1) ?? -1) + 1;
        groups.set(from, [...(groups.get(from) ?? []), key]);
      }
      const fetched = await Promise.all(
        [...groups].map(([fromStep, group]) =>
          api.call('runs.metrics', { ids: [id], keys: group, query: { maxPoints: MAX_POINTS, fromStep } }),
        ),
      );
      if (!mine.current) return;
      if (asked !== attempt) {
        scheduleCatchUp();
        return;
      }
      metricKeys.value = keys;
      merge(fetched.flat());
      // Appended raw points pile up on a long run: start again from the store's downsampled view.
      if (Object.values(series.value).some((s) => s.steps.length > 2 * MAX_POINTS)) await loadMetrics(mine);
    } catch {
      // pushes keep coming; the next catch-up tries again
    }
  }

  function scheduleCatchUp(): void {
    if (catchUpTimer) return;
    const wait = Math.max(0, CATCH_UP_MS - (Date.now() - lastCatchUp));
    catchUpTimer = setTimeout(() => {
      catchUpTimer = null;
      void catchUp();
    }, wait);
  }

  function applyMetrics(event: MetricsEvent): void {
    scheduleCatchUp();
    if (!metricsLoaded.value) return; // the first load (or the catch-up after it) brings these
    let changed = false;
    let newKey = false;
    const next = { ...series.value };
    for (const [key, value] of Object.entries(event.values)) {
      const current = next[key];
      if (!current) {
        next[key] = { steps: [event.step], values: [Number.isFinite(value) ? value : null], downsampled: false };
        newKey = true;
        continue;
      }
      if (event.step > (current.steps.at(-1) ?? -Infinity)) {
        current.steps.push(event.step);
        current.values.push(Number.isFinite(value) ? value : null);
        changed = true;
      }
    }
    if (newKey) {
      series.value = next;
      metricKeys.value = [...new Set([...metricKeys.value, ...Object.keys(event.values)])].sort();
    }
    if (changed || newKey) revision.value++;
  }

  /** A restart: the store dropped an earlier attempt's points after `step`, so do the charts. */
  function dropAfter(step: number): void {
    attempt++;
    let changed = false;
    for (const data of Object.values(series.value)) {
      const cut = data.steps.findIndex((s) => s > step);
      if (cut < 0) continue;
      data.steps.length = cut;
      data.values.length = cut;
      changed = true;
    }
    if (changed) revision.value++;
  }

  // ---- log ---------------------------------------------------------------------------------------------

  async function loadLogs(mine: LoadToken): Promise<void> {
    const id = runId.value;
    if (!id) return;
    try {
      let afterId = logs.value.at(-1)?.id;
      let added: LogEntry[] = [];
      for (;;) {
        const page = await api.call('runs.logs', {
          id,
          limit: LOG_PAGE,
          ...(afterId !== undefined ? { afterId } : {}),
        });
        if (!mine.current) return;
        added = [...added, ...page].slice(-MAX_LOG_LINES);
        afterId = page.at(-1)?.id ?? afterId;
        if (page.length < LOG_PAGE) break;
      }
      if (added.length > 0) {
        const known = logs.value.at(-1)?.id ?? 0;
        logs.value = [...logs.value, ...added.filter((entry) => entry.id > known)].slice(-MAX_LOG_LINES);
      }
    } catch (failure) {
      if (mine.current) error.value = errorMessage(failure);
    }
  }

  function scheduleLogs(): void {
    if (logTimer) return;
    logTimer = setTimeout(() => {
      logTimer = null;
      void loadLogs(session);
    }, 300);
  }

  // ---- pushes -------------------------------------------------------------------------------------------

  function applyPush(message: PushMessage): void {
    const id = runId.value;
    if (!id) return;
    if (message.type === 'run-updated') {
      if (message.run.id === id) {
        scheduleLogs();
        scheduleCatchUp();
      }
      return;
    }
    if (message.runId !== id) return;
    const event = message.event;
    switch (event.type) {
      case 'metrics':
        applyMetrics(event);
        break;
      case 'progress':
      case 'preview':
        break;
      case 'started':
        dropAfter(lastKeptStep(event));
        scheduleLogs();
        break;
      default:
        scheduleLogs();
    }
  }

  return {
    runId,
    run,
    notFound,
    error,
    metricKeys,
    series,
    revision,
    metricsLoaded,
    logs,
    open,
    close,
    applyPush,
  };
});
