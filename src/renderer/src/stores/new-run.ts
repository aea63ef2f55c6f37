import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { JobKind } from '@shared/engine-protocol';
import { datasetDefaults } from '@shared/finetune-config';
import { DatasetSource } from '@shared/dataset-config';
import type { RunPreset } from '@shared/presets';
import type { Run } from '@shared/store-types';
import { errorMessage, isRecord } from '@shared/unknown-value';
import { FORM_SPECS } from '../forms/form-specs';
import { issuesByPath } from '../forms/issues';
import { getAt, pathKey, setAt, type FieldPath } from '../forms/paths';
import { startingConfig, withDefaults } from '../forms/starting-config';
import { datasetLabel, modelLabel } from '../run-info';
import { useRunsStore } from './runs';

export type DraftSource =
  | { kind: 'preset'; id: string; name: string }
  | { kind: 'run'; id: string; name: string }
  /** Started from a run's checkpoint (fine-tune a pre-training run, evaluate a fine-tuned one). */
  | { kind: 'parent'; id: string; name: string }
  | { kind: 'checkpoint'; id: string; name: string };

interface Draft {
  config: Record<string, unknown>;
  name: string;
  /** The name was typed by the user: stop suggesting one. */
  nameEdited: boolean;
  source: DraftSource | null;
  parentRunId: string | null;
  /** The user changed a setting or the name since the draft was loaded (a leave guard asks before leaving). */
  edited: boolean;
}

function emptyDraft(kind: JobKind): Draft {
  return { config: startingConfig(kind), name: '', nameEdited: false, source: null, parentRunId: null, edited: false };
}

/** The dataset a run trained on, as the test split (for evaluating or mapping the landscape of its model). */
function testSplitOf(run: Run): Record<string, unknown> | null {
  const dataset = run.config.dataset;
  return isRecord(dataset) ? { ...dataset, split: 'test' } : null;
}

/**
 * The new-run form's drafts, one per kind of run: a full config (every field shown with its value), its
 * name, where it came from and the parent run, and the kind's schema verdict on it. Drafts are kept
 * across visits to other screens.
 */
export const useNewRunStore = defineStore('new-run', () => {
  const runs = useRunsStore();
  const kind = ref<JobKind>('pretrain');
  const drafts = ref<Record<JobKind, Draft>>({
    pretrain: emptyDraft('pretrain'),
    finetune: emptyDraft('finetune'),
    evaluate: emptyDraft('evaluate'),
    landscape: emptyDraft('landscape'),
  });
  const submitting = ref(false);
  const submitError = ref<string | null>(null);

  const spec = computed(() => FORM_SPECS[kind.value]);
  const draft = computed(() => drafts.value[kind.value]);
  const config = computed(() => draft.value.config);
  const name = computed(() => draft.value.name);
  const nameEdited = computed(() => draft.value.nameEdited);
  const source = computed(() => draft.value.source);
  const parentRunId = computed(() => draft.value.parentRunId);
  const edited = computed(() => draft.value.edited);

  const validation = computed(() => spec.value.schema.safeParse(config.value));
  const issues = computed(() => issuesByPath(validation.value.success ? undefined : validation.value.error));
  const issueCount = computed(() => [...issues.value.values()].reduce((sum, list) => sum + list.length, 0));

  const suggestedName = computed(() => {
    const c = config.value;
    const from = draft.value.source?.name;
    switch (kind.value) {
      case 'pretrain': {
        const mode = getAt(c, ['mode']);
        return [typeof mode === 'string' ? mode : 'pretrain', modelLabel(c), datasetLabel(c)]
          .filter(Boolean)
          .join(' · ');
      }
      case 'finetune': {
        const method = getAt(c, ['method']);
        return [typeof method === 'string' ? method : 'finetune', from ? `from ${from}` : datasetLabel(c)]
          .filter(Boolean)
          .join(' · ');
      }
      case 'evaluate':
        return ['evaluation', from ?? ''].filter(Boolean).join(' · ');
      case 'landscape': {
        const loss = getAt(c, ['loss']);
        return ['landscape', typeof loss === 'string' ? loss : '', from ?? ''].filter(Boolean).join(' · ');
      }
    }
    return kind.value;
  });
  const effectiveName = computed(() =>
    draft.value.nameEdited ? draft.value.name : draft.value.name || suggestedName.value,
  );

  function update(patch: Partial<Draft>): void {
    drafts.value = { ...drafts.value, [kind.value]: { ...draft.value, ...patch } };
  }

  function setKind(next: JobKind): void {
    kind.value = next;
    submitError.value = null;
  }

  /** Start from a config (a preset's or a run's), completed with the schema's defaults where it can be. */
  function completed(input: Record<string, unknown>): Record<string, unknown> {
    // An invalid config (a run made by an older version, say) is loaded as is, so its problems show.
    return withDefaults(kind.value, input) ?? { ...startingConfig(kind.value), ...structuredClone(input) };
  }

  function loadPreset(preset: RunPreset): void {
    kind.value = 'pretrain';
    update({
      config: completed(preset.config),
      source: { kind: 'preset', id: preset.id, name: preset.name },
      name: '',
      nameEdited: false,
      parentRunId: null,
      edited: false,
    });
    submitError.value = null;
  }

  /**
   * A fine-tuning preset's settings over the draft: the checkpoint stays, and so does the dataset unless
   * it is the built-in set (then the preset's size and such apply to it).
   */
  function applySettings(preset: RunPreset): void {
    const current = config.value;
    // A JSON copy: the preset is reactive state, which structuredClone refuses.
    const { dataset: presetDataset, ...settings } = JSON.parse(JSON.stringify(preset.config)) as Record<
      string,
      unknown
    >;
    const dataset =
      isRecord(current.dataset) && isRecord(presetDataset) && current.dataset.kind === presetDataset.kind
        ? { ...current.dataset, ...presetDataset }
        : current.dataset;
    update({
      config: completed({ ...current, ...settings, dataset, source: current.source }),
      source: draft.value.source ?? { kind: 'preset', id: preset.id, name: preset.name },
      edited: true,
    });
    submitError.value = null;
  }

  function loadRun(run: Run): void {
    kind.value = run.kind;
    update({
      config: completed(run.config),
      source: { kind: 'run', id: run.id, name: run.name },
      name: `${run.name} (copy)`,
      nameEdited: true,
      parentRunId: run.parentRunId,
      edited: false,
    });
    submitError.value = null;
  }

  function loadDefaults(): void {
    update(emptyDraft(kind.value));
    submitError.value = null;
  }

  /**
   * Start a `next`-kind run from `parent`'s checkpoint (its last one unless `checkpoint` names another):
   * fine-tune a pre-training run on its dataset; evaluate or map the landscape of a model on the test split.
   */
  function startFrom(next: JobKind, parent: Run | null, checkpoint: string | null): void {
    kind.value = next;
    const path = checkpoint ?? parent?.lastCheckpoint ?? '';
    const base = startingConfig(next);
    const dataset = parent ? (next === 'finetune' ? parent.config.dataset : testSplitOf(parent)) : null;
    let config: Record<string, unknown> = { ...base, ...(isRecord(dataset) ? { dataset } : {}) };
    if (next === 'finetune') config = { ...config, source: { kind: 'pretrained', checkpoint: path } };
    else config = { ...config, checkpoint: path };
    if (next === 'evaluate' && parent?.kind === 'finetune') {
      const threat = parent.config.threat;
      const parsedDataset = DatasetSource.safeParse(dataset);
      const eps =
        isRecord(threat) && typeof threat.eps === 'number'
          ? threat.eps
          : parsedDataset.success
            ? datasetDefaults(parsedDataset.data).eps
            : 8;
      config = { ...config, eps, threat: isRecord(threat) && typeof threat.norm === 'string' ? threat.norm : 'linf' };
    }
    const sourceName = parent?.name ?? path.split(/[\\/]/).filter(Boolean).slice(-3).join('/');
    update({
      config: completed(config),
      source: parent
        ? { kind: 'parent', id: parent.id, name: parent.name }
        : { kind: 'checkpoint', id: path, name: sourceName },
      name: '',
      nameEdited: false,
      parentRunId: parent?.id ?? null,
      edited: false,
    });
    submitError.value = null;
  }

  function setName(value: string): void {
    update({ name: value, nameEdited: value.trim().length > 0, edited: true });
  }

  /** The draft was started (as a sweep, say): nothing unsaved remains. */
  function markStarted(): void {
    update({ edited: false });
  }

  function get(path: FieldPath): unknown {
    return getAt(config.value, path);
  }

  function set(path: FieldPath, value: unknown): void {
    update({ config: setAt(config.value, path, value) as Record<string, unknown>, edited: true });
  }

  function issuesAt(path: FieldPath): string[] {
    return issues.value.get(pathKey(path)) ?? [];
  }

  /** Issues at paths no field shows (so the form can list them at the top rather than lose them). */
  function issuesOutside(shown: (key: string) => boolean): string[] {
    return [...issues.value]
      .filter(([key]) => !shown(key))
      .flatMap(([key, list]) => list.map((m) => `${key || 'config'}: ${m}`));
  }

  async function submit(): Promise<Run | null> {
    if (!validation.value.success || !effectiveName.value.trim()) return null;
    submitting.value = true;
    submitError.value = null;
    try {
      const run = await runs.create({
        kind: kind.value,
        name: effectiveName.value.trim(),
        config: config.value,
      });
      markStarted();
      return run;
    } catch (failure) {
      submitError.value = errorMessage(failure);
      return null;
    } finally {
      submitting.value = false;
    }
  }

  return {
    kind,
    spec,
    config,
    name,
    nameEdited,
    source,
    parentRunId,
    edited,
    submitting,
    submitError,
    validation,
    issues,
    issueCount,
    suggestedName,
    effectiveName,
    setKind,
    loadPreset,
    applySettings,
    loadRun,
    loadDefaults,
    startFrom,
    setName,
    markStarted,
    get,
    set,
    issuesAt,
    issuesOutside,
    submit,
  };
});
