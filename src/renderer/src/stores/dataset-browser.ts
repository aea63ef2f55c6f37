import { defineStore } from 'pinia';
import { computed, ref, watch } from 'vue';
import type { DatasetImage, DatasetInfo, DatasetPage, DownloadStatus } from '@shared/api';
import { DatasetSource } from '@shared/dataset-config';
import { api } from '../api/client';
import { errorMessage } from '../format';
import { latestLoad, latestOnly, type LoadToken } from '../latest';

/** The dataset browser: the source being edited, the opened dataset, its current page and class filter. */
export const useDatasetBrowserStore = defineStore('dataset-browser', () => {
  const draft = ref<Record<string, unknown>>({ dataset: DatasetSource.parse({ kind: 'builtin' }) });
  const source = ref<DatasetSource | null>(null);
  const info = ref<DatasetInfo | null>(null);
  const page = ref<DatasetPage | null>(null);
  const label = ref<number | null>(null);
  const offset = ref(0);
  const pageSize = ref(100);
  /** One load at a time counts: opening, paging and filtering all drop answers to earlier requests. */
  const loader = latestLoad();
  /** How long the last page took, request to answer (ms). */
  const pageMs = ref<number | null>(null);

  const validation = computed(() => DatasetSource.safeParse(draft.value.dataset));
  // The page indicator describes the page on screen (its own offset and total), not one still loading.
  const total = computed(() => page.value?.total ?? 0);
  const pageCount = computed(() => Math.max(1, Math.ceil(total.value / pageSize.value)));
  const pageIndex = computed(() => Math.floor((page.value?.offset ?? offset.value) / pageSize.value));

  // Another kind of source does not live at the last kind's path: a CIFAR-10 folder is no image folder.
  watch(
    () => (draft.value.dataset as { kind?: unknown } | undefined)?.kind,
    (kind, previous) => {
      const dataset = draft.value.dataset as Record<string, unknown>;
      if (previous === undefined || kind === previous || !('root' in dataset)) return;
      draft.value = { ...draft.value, dataset: { ...dataset, root: '' } };
    },
  );

  /** A failed load shows its error alone: no grid (or classes) of what was open before. */
  function clearShown(): void {
    source.value = null;
    info.value = null;
    page.value = null;
  }

  function open(): Promise<void> {
    const parsed = validation.value;
    if (!parsed.success) return Promise.resolve();
    return loader.run(async (token) => {
      const opened = parsed.data;
      try {
        const described = await api.call('datasets.describe', { source: opened });
        if (!token.current) return;
        source.value = opened;
        info.value = described;
        page.value = null;
        label.value = null;
        offset.value = 0;
        await fetchPage(token);
      } catch (failure) {
        if (token.current) clearShown();
        throw failure;
      }
    });
  }

  async function fetchPage(token: LoadToken): Promise<void> {
    if (!source.value) return;
    const started = performance.now();
    try {
      const next = await api.call('datasets.page', {
        source: source.value,
        offset: offset.value,
        limit: pageSize.value,
        label: label.value,
      });
      if (!token.current) return;
      page.value = next;
      pageMs.value = performance.now() - started;
    } catch (failure) {
      if (token.current) page.value = null;
      throw failure;
    }
  }

  function loadPage(): Promise<void> {
    return loader.run(fetchPage);
  }

  /** A second click before the first image arrives shows the second image. */
  const imageLoad = latestOnly();
  /** One image at full size; null when a later click superseded it or it failed (then `error` says why). */
  async function fetchImage(index: number): Promise<DatasetImage | null> {
    if (!source.value) return null;
    const token = imageLoad.begin();
    try {
      const image = await api.call('datasets.image', { source: source.value, index });
      return token.current ? image : null;
    } catch (failure) {
      if (token.current) loader.error.value = errorMessage(failure);
      return null;
    }
  }

  /** CIFAR-10's download, polled while it runs; once verified, the browser opens it. */
  const download = ref<DownloadStatus | null>(null);
  async function startDownload(): Promise<void> {
    const dataset = draft.value.dataset as Record<string, unknown>;
    const root = dataset.kind === 'cifar10' && typeof dataset.root === 'string' ? dataset.root.trim() : '';
    try {
      let status = await api.call('datasets.download', { dataset: 'cifar10', start: true, ...(root ? { root } : {}) });
      download.value = status;
      while (status.state === 'running') {
        await new Promise((resolve) => setTimeout(resolve, 300));
        status = await api.call('datasets.download', { dataset: 'cifar10' });
        download.value = status;
      }
    } catch (failure) {
      download.value = {
        state: 'failed',
        receivedBytes: 0,
        totalBytes: null,
        dir: null,
        url: null,
        error: errorMessage(failure),
      };
      return;
    }
    const done = download.value;
    if (done.state !== 'done' || !done.dir) return;
    const current = draft.value.dataset as Record<string, unknown>;
    draft.value = {
      ...draft.value,
      dataset: { ...(current.kind === 'cifar10' ? current : { kind: 'cifar10' }), root: done.dir },
    };
    await open();
  }

  function goTo(index: number): void {
    offset.value = Math.min(Math.max(0, index), pageCount.value - 1) * pageSize.value;
    void loadPage();
  }

  function filter(next: number | null): void {
    label.value = next;
    offset.value = 0;
    void loadPage();
  }

  function setPageSize(size: number): void {
    pageSize.value = size;
    offset.value = 0;
    void loadPage();
  }

  return {
    draft,
    source,
    info,
    page,
    label,
    offset,
    pageSize,
    loading: loader.loading,
    error: loader.error,
    pageMs,
    validation,
    total,
    pageCount,
    pageIndex,
    open,
    loadPage,
    fetchImage,
    download,
    startDownload,
    goTo,
    filter,
    setPageSize,
  };
});
