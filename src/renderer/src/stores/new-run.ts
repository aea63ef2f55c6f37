import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { PretrainConfig } from '../../../shared/pretrain-config';
import type { RunPreset } from '../../../shared/presets';
import type { Run } from '../../../shared/store-types';
import { issuesByPath } from '../forms/issues';
import { getAt, pathKey, setAt, type FieldPath } from '../forms/paths';
import { datasetLabel, modelLabel } from '../run-info';
import { useRunsStore } from './runs';

/** The config every field starts from: the schema's defaults. */
function schemaDefaults(): Record<string, unknown> {
  return PretrainConfig.parse({}) as Record<string, unknown>;
}

/**
 * The new-run form's draft: a full config (every field shown with its value), its name and where it
 * came from, and the schema's verdict on it, kept across visits to other screens.
 */
export const useNewRunStore = defineStore('new-run', () => {
  const runs = useRunsStore();
  const config = ref<Record<string, unknown>>(schemaDefaults());
  const name = ref('');
  /** The name was typed by the user: stop suggesting one. */
  const nameEdited = ref(false);
  const source = ref<{ kind: 'preset'; id: string; name: string } | { kind: 'run'; id: string; name: string } | null>(
    null,
  );
  const submitting = ref(false);
  const submitError = ref<string | null>(null);

  const validation = computed(() => PretrainConfig.safeParse(config.value));
  const issues = computed(() => issuesByPath(validation.value.success ? undefined : validation.value.error));
  const issueCount = computed(() => [...issues.value.values()].reduce((sum, list) => sum + list.length, 0));

  const suggestedName = computed(() => {
    const mode = getAt(config.value, ['mode']);
    return [typeof mode === 'string' ? mode : 'pretrain', modelLabel(config.value), datasetLabel(config.value)]
      .filter(Boolean)
      .join(' · ');
  });
  const effectiveName = computed(() => (nameEdited.value ? name.value : name.value || suggestedName.value));

  /** Start from a config (a preset's or a run's), completed with the schema's defaults where it can be. */
  function load(input: Record<string, unknown>): void {
    const parsed = PretrainConfig.safeParse(input);
    // An invalid config (a run made by an older version, say) is loaded as is, so its problems show.
    config.value = parsed.success
      ? (structuredClone(parsed.data) as Record<string, unknown>)
      : { ...schemaDefaults(), ...structuredClone(input) };
    submitError.value = null;
  }

  function loadPreset(preset: RunPreset): void {
    load(preset.config);
    source.value = { kind: 'preset', id: preset.id, name: preset.name };
    name.value = '';
    nameEdited.value = false;
  }

  function loadRun(run: Run): void {
    load(run.config);
    source.value = { kind: 'run', id: run.id, name: run.name };
    name.value = `${run.name} (copy)`;
    nameEdited.value = true;
  }

  function loadDefaults(): void {
    load({});
    source.value = null;
    name.value = '';
    nameEdited.value = false;
  }

  function setName(value: string): void {
    name.value = value;
    nameEdited.value = value.trim().length > 0;
  }

  function get(path: FieldPath): unknown {
    return getAt(config.value, path);
  }

  function set(path: FieldPath, value: unknown): void {
    config.value = setAt(config.value, path, value) as Record<string, unknown>;
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
      return await runs.create({
        kind: 'pretrain',
        name: effectiveName.value.trim(),
        config: config.value,
        parentRunId: null,
      });
    } catch (failure) {
      submitError.value = failure instanceof Error ? failure.message : String(failure);
      return null;
    } finally {
      submitting.value = false;
    }
  }

  return {
    config,
    name,
    nameEdited,
    source,
    submitting,
    submitError,
    validation,
    issues,
    issueCount,
    suggestedName,
    effectiveName,
    loadPreset,
    loadRun,
    loadDefaults,
    setName,
    get,
    set,
    issuesAt,
    issuesOutside,
    submit,
  };
});
