import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { DatasetInfo, DatasetPage } from '../../../shared/api';
import { DatasetSource } from '../../../shared/dataset-config';
import { api } from '../api/client';
import { errorMessage } from '../format';

/** The dataset browser: the source being edited, the opened dataset, its current page and class filter. */
export const useDatasetBrowserStore = defineStore('dataset-browser', () => {
  const draft = ref<Record<string, unknown>>({ dataset: DatasetSource.parse({ kind: 'builtin' }) });
  const source = ref<DatasetSource | null>(null);
  const info = ref<DatasetInfo | null>(null);
  const page = ref<DatasetPage | null>(null);
  const label = ref<number | null>(null);
  const offset = ref(0);
  const pageSize = ref(100);
  const loading = ref(false);
  const error = ref<string | null>(null);
  /** How long the last page took, request to answer (ms). */
  const pageMs = ref<number | null>(null);
  let request = 0;

  const validation = computed(() => DatasetSource.safeParse(draft.value.dataset));
  const total = computed(() => page.value?.total ?? 0);
  const pageCount = computed(() => Math.max(1, Math.ceil(total.value / pageSize.value)));
  const pageIndex = computed(() => Math.floor(offset.value / pageSize.value));

  async function open(): Promise<void> {
    if (!validation.value.success) return;
    const mine = ++request;
    loading.value = true;
    error.value = null;
    try {
      const opened = validation.value.data;
      const described = await api.call('datasets.describe', { source: opened });
      if (mine !== request) return;
      source.value = opened;
      info.value = described;
      label.value = null;
      offset.value = 0;
      await loadPage();
    } catch (failure) {
      if (mine === request) error.value = errorMessage(failure);
    } finally {
      if (mine === request) loading.value = false;
    }
  }

  async function loadPage(): Promise<void> {
    if (!source.value) return;
    const mine = ++request;
    loading.value = true;
    const started = performance.now();
    try {
      const next = await api.call('datasets.page', {
        source: source.value,
        offset: offset.value,
        limit: pageSize.value,
        label: label.value,
      });
      if (mine !== request) return;
      page.value = next;
      pageMs.value = performance.now() - started;
      error.value = null;
    } catch (failure) {
      if (mine === request) error.value = errorMessage(failure);
    } finally {
      if (mine === request) loading.value = false;
    }
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
    loading,
    error,
    pageMs,
    validation,
    total,
    pageCount,
    pageIndex,
    open,
    loadPage,
    goTo,
    filter,
    setPageSize,
  };
});
