import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import { z } from 'zod';
import type { PushMessage } from '../../../shared/push';
import { PreviewKind, type MetricsEvent } from '../../../shared/run-events';
import type { LogEntry, MetricSeries } from '../../../shared/store-types';
import { api } from '../api/client';
import { errorMessage } from '../format';
import { useRunsStore } from './runs';

/** One metric's points as the charts read them (mutated in place; `revision` says when). */
export interface SeriesData {
  steps: number[];
  values: (number | null)[];
  /** Some of the stored points were left out by the store's downsampling. */
  downsampled: boolean;
}

export interface PreviewImage {
  kind: PreviewKind;
  url: string;
}

export interface PreviewSnapshot {
  step: number;
  epoch: number;
  count: number;
  imageSize: number;
  perturbationScale: number;
  images: PreviewImage[];
}

const PreviewMetadata = z.object({
  epoch: z.number().default(0),
  files: z.partialRecord(PreviewKind, z.string()),
  count: z.number().int().positive(),
  imageSize: z.number().int().positive(),
  perturbationScale: z.number().positive(),
});

const MAX_POINTS = 2000;
const MAX_LOG_LINES = 2000;
const LOG_PAGE = 5000;
/** Pushes add points at once; a fetch from the store at most this often fills any gap the socket left. */
const CATCH_UP_MS = 3000;

/** The metrics, log and latest preview of the run the run page shows, loaded then kept live. */
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
  const preview = shallowRef<PreviewSnapshot | null>(null);
  const previewCount = ref(0);
  /** Increases with every open(), so answers for a run left meanwhile are dropped. */
  let session = 0;
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
    preview.value = null;
    previewCount.value = 0;
    notFound.value = false;
    error.value = null;
    if (catchUpTimer) clearTimeout(catchUpTimer);
    if (logTimer) clearTimeout(logTimer);
    catchUpTimer = null;
    logTimer = null;
  }

  async function open(id: string): Promise<void> {
    const mine = ++session;
    runId.value = id;
    reset();
    try {
      await runs.fetchRun(id);
    } catch (failure) {
      if (mine !== session) return;
      notFound.value = true;
      error.value = errorMessage(failure);
      return;
    }
    await Promise.all([loadMetrics(mine), loadLogs(mine), loadLatestPreview(mine)]);
  }

  function close(): void {
    session++;
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

  async function loadMetrics(mine: number): Promise<void> {
    const id = runId.value;
    if (!id) return;
    try {
      const keys = await api.call('runs.metricKeys', { ids: [id] });
      if (mine !== session) return;
      metricKeys.value = keys;
      if (keys.length > 0) {
        const fetched = await api.call('runs.metrics', { ids: [id], keys, query: { maxPoints: MAX_POINTS } });
        if (mine !== session) return;
        series.value = {};
        merge(fetched);
      }
      metricsLoaded.value = true;
    } catch (failure) {
      if (mine === session) error.value = errorMessage(failure);
    }
  }

  /** Fetch what the store holds after each series' last point (grouped by that step, one call a group). */
  async function catchUp(): Promise<void> {
    const id = runId.value;
    const mine = session;
    if (!id) return;
    lastCatchUp = Date.now();
    try {
      const keys = await api.call('runs.metricKeys', { ids: [id] });
      if (mine !== session) return;
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
      if (mine !== session) return;
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

  // ---- log ---------------------------------------------------------------------------------------------

  async function loadLogs(mine: number): Promise<void> {
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
        if (mine !== session) return;
        added = [...added, ...page].slice(-MAX_LOG_LINES);
        afterId = page.at(-1)?.id ?? afterId;
        if (page.length < LOG_PAGE) break;
      }
      if (added.length > 0) {
        const known = logs.value.at(-1)?.id ?? 0;
        logs.value = [...logs.value, ...added.filter((entry) => entry.id > known)].slice(-MAX_LOG_LINES);
      }
    } catch (failure) {
      if (mine === session) error.value = errorMessage(failure);
    }
  }

  function scheduleLogs(): void {
    if (logTimer) return;
    logTimer = setTimeout(() => {
      logTimer = null;
      void loadLogs(session);
    }, 300);
  }

  // ---- preview ----------------------------------------------------------------------------------------

  async function readImages(id: string, files: Partial<Record<PreviewKind, string>>): Promise<PreviewImage[]> {
    const kinds = PreviewKind.options.filter((kind) => files[kind] !== undefined);
    return Promise.all(
      kinds.map(async (kind) => {
        const file = await api.call('files.read', { runId: id, path: files[kind] ?? '' });
        return { kind, url: `data:${file.mime};base64,${file.base64}` };
      }),
    );
  }

  async function showPreview(
    mine: number,
    snapshot: Omit<PreviewSnapshot, 'images'>,
    files: Partial<Record<PreviewKind, string>>,
  ): Promise<void> {
    const id = runId.value;
    if (!id || (preview.value && preview.value.step > snapshot.step)) return;
    try {
      const images = await readImages(id, files);
      if (mine !== session || (preview.value && preview.value.step > snapshot.step)) return;
      preview.value = { ...snapshot, images };
    } catch (failure) {
      if (mine === session) error.value = `Could not read the preview images: ${errorMessage(failure)}`;
    }
  }

  async function loadLatestPreview(mine: number): Promise<void> {
    const id = runId.value;
    if (!id) return;
    try {
      const artifacts = await api.call('runs.artifacts', { id, kind: 'preview' });
      if (mine !== session) return;
      previewCount.value = artifacts.length;
      const latest = artifacts.reduce<(typeof artifacts)[number] | null>(
        (best, artifact) =>
          !best || (artifact.step ?? -1) > (best.step ?? -1) || (artifact.step === best.step && artifact.id > best.id)
            ? artifact
            : best,
        null,
      );
      if (!latest) return;
      const metadata = PreviewMetadata.safeParse(latest.metadata);
      if (!metadata.success) return;
      const { files, ...rest } = metadata.data;
      await showPreview(mine, { step: latest.step ?? 0, ...rest }, files);
    } catch (failure) {
      if (mine === session) error.value = errorMessage(failure);
    }
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
      case 'preview':
        previewCount.value++;
        void showPreview(
          session,
          {
            step: event.step,
            epoch: event.epoch,
            count: event.count,
            imageSize: event.imageSize,
            perturbationScale: event.perturbationScale,
          },
          event.files,
        );
        break;
      case 'progress':
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
    preview,
    previewCount,
    open,
    close,
    applyPush,
  };
});
