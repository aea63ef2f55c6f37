import { defineStore } from 'pinia';
import { computed, ref, watch } from 'vue';
import type { ApiInput } from '@shared/api';
import type { PushMessage } from '@shared/push';
import type { ProgressEvent } from '@shared/run-events';
import { matchesRunQuery, parseRunQuery, type RunFigures } from '@shared/run-query';
import type { Run, RunFilter, RunStatus, StoreRunKind, TagCount } from '@shared/store-types';
import { api } from '../api/client';
import { latestLoad } from '../latest';
import { runDataset, runMode, runModel, runProgress } from '../run-info';

export type RunSortKey =
  | 'status'
  | 'name'
  | 'kind'
  | 'model'
  | 'dataset'
  | 'progress'
  | 'imagesPerSecond'
  | 'createdAt'
  | 'loss'
  | 'mi'
  | 'natural'
  | 'robust';

export interface RunSort {
  key: RunSortKey;
  direction: 'asc' | 'desc';
}

export interface RunListFilter {
  statuses: RunStatus[];
  kind: StoreRunKind | '';
  text: string;
  tag: string;
}

/** The store's sort for a column, where it has one (the others sort the loaded rows only). */
const SERVER_SORT: Partial<Record<RunSortKey, string>> = {
  status: 'status',
  name: 'name',
  kind: 'kind',
  progress: 'step',
  createdAt: 'createdAt',
  loss: 'summary:loss',
  mi: 'summary:mi',
};

const STATUS_ORDER: Record<RunStatus, number> = {
  running: 0,
  queued: 1,
  failed: 2,
  interrupted: 3,
  cancelled: 4,
  done: 5,
};

type SortValue = string | number | null;

function sortValue(run: Run, key: RunSortKey, figures: RunFigures | null): SortValue {
  switch (key) {
    case 'natural':
      return figures?.natural ?? null;
    case 'robust':
      return figures?.robust ?? null;
    case 'status':
      return STATUS_ORDER[run.status];
    case 'name':
      return run.name.toLowerCase();
    case 'kind':
      return `${run.kind} ${runMode(run)}`;
    case 'model':
      return runModel(run);
    case 'dataset':
      return runDataset(run);
    case 'progress':
      return runProgress(run);
    case 'imagesPerSecond':
      return run.imagesPerSecond;
    case 'createdAt':
      return run.createdAt;
    case 'loss':
      return run.summary?.loss ?? null;
    case 'mi':
      return run.summary?.mi ?? null;
  }
}

/** Rows without a value go last whatever the direction, as the store does for summary sorts. */
function compareRuns(a: Run, b: Run, sort: RunSort, figures: Record<string, RunFigures | null>): number {
  const x = sortValue(a, sort.key, figures[a.id] ?? null);
  const y = sortValue(b, sort.key, figures[b.id] ?? null);
  if (x === null || y === null) return x === y ? b.createdAt - a.createdAt : x === null ? 1 : -1;
  const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
  return (sort.direction === 'asc' ? order : -order) || b.createdAt - a.createdAt;
}

/** What the store's text filter matches: id, name, note, tags or config JSON, case-insensitive. */
function matchesText(run: Run, text: string): boolean {
  const needle = text.trim().toLowerCase();
  if (!needle) return true;
  const haystack = [run.id, run.name, run.note ?? '', ...run.tags, JSON.stringify(run.config)];
  return haystack.some((part) => part.toLowerCase().includes(needle));
}

/** Every run the renderer knows (the list, and any run opened by id), kept current from pushes. */
export const useRunsStore = defineStore('runs', () => {
  const byId = ref<Record<string, Run>>({});
  const listIds = ref<string[]>([]);
  const filter = ref<RunListFilter>({ statuses: [], kind: '', text: '', tag: '' });
  const sort = ref<RunSort>({ key: 'createdAt', direction: 'desc' });
  /** The list's loads: a filter or sort changed meanwhile drops the earlier answer. */
  const loader = latestLoad();
  const loaded = ref(false);
  const tags = ref<TagCount[]>([]);
  const selected = ref<string[]>([]);
  /** Natural and worst-case accuracy of each listed run's latest evaluation. */
  const figures = ref<Record<string, RunFigures | null>>({});
  /** The search box read as structured terms (`lambda<1e-3 robust>0.4`) and text words. */
  const query = computed(() => parseRunQuery(filter.value.text));

  function matchesFilter(run: Run): boolean {
    const f = filter.value;
    return (
      (f.statuses.length === 0 || f.statuses.includes(run.status)) &&
      (f.kind === '' || run.kind === f.kind) &&
      (f.tag === '' || run.tags.includes(f.tag)) &&
      matchesText(run, query.value.text) &&
      matchesRunQuery(run, query.value, figures.value[run.id] ?? null)
    );
  }

  const rows = computed<Run[]>(() =>
    listIds.value
      .map((id) => byId.value[id])
      .filter((run): run is Run => run !== undefined)
      .filter((run) => matchesRunQuery(run, query.value, figures.value[run.id] ?? null))
      .sort((a, b) => compareRuns(a, b, sort.value, figures.value)),
  );

  function serverFilter(): RunFilter {
    const f = filter.value;
    const serverSort = SERVER_SORT[sort.value.key];
    return {
      ...(f.statuses.length > 0 ? { status: f.statuses } : {}),
      ...(f.kind ? { kind: f.kind } : {}),
      ...(query.value.text.trim() ? { text: query.value.text.trim() } : {}),
      ...(f.tag ? { tag: f.tag } : {}),
      sort: serverSort ?? 'createdAt',
      direction: serverSort ? sort.value.direction : 'desc',
      limit: 1000,
    };
  }

  function load(): Promise<void> {
    return loader.run(async (token) => {
      const [runs, tagCounts] = await Promise.all([api.call('runs.list', serverFilter()), api.call('runs.tags', {})]);
      if (!token.current) return;
      const found = await api.call('runs.figures', { ids: runs.map((run) => run.id) });
      if (!token.current) return;
      figures.value = found;
      const next = { ...byId.value };
      for (const run of runs) next[run.id] = run;
      byId.value = next;
      listIds.value = runs.map((run) => run.id);
      tags.value = tagCounts;
      selected.value = selected.value.filter((id) => listIds.value.includes(id));
      loaded.value = true;
    });
  }

  let textTimer: ReturnType<typeof setTimeout> | null = null;
  watch(
    () => [filter.value.statuses.join(), filter.value.kind, filter.value.tag, sort.value.key, sort.value.direction],
    () => void load(),
  );
  watch(
    () => filter.value.text,
    () => {
      if (textTimer) clearTimeout(textTimer);
      textTimer = setTimeout(() => void load(), 250);
    },
  );

  /** Take a run's new row: update it wherever it is shown, add it to or drop it from the list. */
  function upsert(run: Run): Run {
    byId.value = { ...byId.value, [run.id]: run };
    const listed = listIds.value.includes(run.id);
    const matches = matchesFilter(run);
    if (matches && !listed) listIds.value = [run.id, ...listIds.value];
    if (!matches && listed) listIds.value = listIds.value.filter((id) => id !== run.id);
    return run;
  }

  function forget(id: string): void {
    const next = { ...byId.value };
    delete next[id];
    byId.value = next;
    listIds.value = listIds.value.filter((other) => other !== id);
    selected.value = selected.value.filter((other) => other !== id);
  }

  function applyProgress(runId: string, event: ProgressEvent): void {
    const run = byId.value[runId];
    if (!run) return;
    byId.value[runId] = {
      ...run,
      status: run.status === 'queued' ? 'running' : run.status,
      step: event.step,
      totalSteps: event.totalSteps,
      epoch: event.epoch,
      epochs: event.epochs,
      imagesPerSecond: event.imagesPerSecond,
      etaSeconds: event.etaSeconds,
      lastEventAt: Date.now(),
    };
  }

  /** An evaluation that ended may change its model's figures. */
  async function refreshFigures(): Promise<void> {
    try {
      figures.value = await api.call('runs.figures', { ids: listIds.value });
    } catch {
      // the figures are refreshed with the next load
    }
  }

  function applyPush(message: PushMessage): void {
    if (message.type === 'run-updated') {
      upsert(message.run);
      if (message.run.kind === 'evaluate' && message.run.status === 'done') void refreshFigures();
    } else if (message.event.type === 'progress') applyProgress(message.runId, message.event);
  }

  async function fetchRun(id: string): Promise<Run> {
    return upsert(await api.call('runs.get', { id }));
  }

  async function create(input: ApiInput<'runs.create'>): Promise<Run> {
    return upsert(await api.call('runs.create', input));
  }

  async function cancel(id: string): Promise<Run> {
    return upsert(await api.call('runs.cancel', { id }));
  }

  async function resume(id: string): Promise<Run> {
    return upsert(await api.call('runs.resume', { id }));
  }

  async function remove(id: string, deleteFiles: boolean): Promise<void> {
    await api.call('runs.delete', { id, deleteFiles });
    forget(id);
    void refreshTags();
  }

  async function rename(id: string, name: string): Promise<Run> {
    return upsert(await api.call('runs.rename', { id, name }));
  }

  async function setNote(id: string, text: string): Promise<Run> {
    return upsert(await api.call('runs.setNote', { id, text }));
  }

  async function addTag(id: string, tag: string): Promise<Run> {
    const run = upsert(await api.call('runs.addTag', { id, tag }));
    void refreshTags();
    return run;
  }

  async function removeTag(id: string, tag: string): Promise<Run> {
    const run = upsert(await api.call('runs.removeTag', { id, tag }));
    void refreshTags();
    return run;
  }

  async function refreshTags(): Promise<void> {
    try {
      tags.value = await api.call('runs.tags', {});
    } catch {
      // the tag list is a convenience; the next load refreshes it
    }
  }

  function toggleSort(key: RunSortKey): void {
    sort.value =
      sort.value.key === key
        ? { key, direction: sort.value.direction === 'asc' ? 'desc' : 'asc' }
        : {
            key,
            direction: key === 'name' || key === 'model' || key === 'dataset' || key === 'status' ? 'asc' : 'desc',
          };
  }

  function toggleSelected(id: string): void {
    selected.value = selected.value.includes(id)
      ? selected.value.filter((other) => other !== id)
      : [...selected.value, id];
  }

  return {
    byId,
    rows,
    figures,
    query,
    filter,
    sort,
    loading: loader.loading,
    loaded,
    error: loader.error,
    tags,
    selected,
    load,
    upsert,
    applyPush,
    fetchRun,
    create,
    cancel,
    resume,
    remove,
    rename,
    setNote,
    addTag,
    removeTag,
    refreshTags,
    toggleSort,
    toggleSelected,
  };
});
