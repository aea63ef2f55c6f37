import { DatasetSource } from '@shared/dataset-config';
import type { JobKind } from '@shared/engine-protocol';
import { FORM_SPECS } from './form-specs';
import { getAt, setAt, type FieldPath } from './paths';
import { defaultValueOf } from './schema-walk';

/** Where a kind's config names the checkpoint it starts from (left empty until the user picks one). */
const CHECKPOINT_PATHS: Record<JobKind, FieldPath[]> = {
  pretrain: [],
  finetune: [['source', 'checkpoint']],
  evaluate: [['checkpoint']],
  landscape: [['checkpoint']],
};
const PLACEHOLDER = '/checkpoint-to-be-chosen';

/**
 * The config with every default the schema fills in written out, so the form shows every value; an
 * empty checkpoint stays empty (and the form says it is missing). A config the schema rejects for other
 * reasons is returned as it is, so its problems show; null then.
 */
export function withDefaults(kind: JobKind, config: Record<string, unknown>): Record<string, unknown> | null {
  const blanks = CHECKPOINT_PATHS[kind].filter((path) => getAt(config, path) === '');
  let candidate: unknown = config;
  for (const path of blanks) candidate = setAt(candidate, path, PLACEHOLDER);
  const parsed = FORM_SPECS[kind].schema.safeParse(candidate);
  if (!parsed.success) return null;
  let out: unknown = structuredClone(parsed.data);
  for (const path of blanks) out = setAt(out, path, '');
  return out as Record<string, unknown>;
}

/** Where each kind starts without a run behind it: the schema's defaults, completed where the schema cannot. */
export function startingConfig(kind: JobKind): Record<string, unknown> {
  const base = defaultValueOf(FORM_SPECS[kind].node) as Record<string, unknown>;
  let start: Record<string, unknown>;
  switch (kind) {
    case 'evaluate':
      start = {
        ...base,
        checkpoint: '',
        dataset: DatasetSource.parse({ kind: 'builtin', split: 'test' }),
        examples: { count: 1000, pick: 'first' },
        attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
      };
      break;
    case 'landscape':
      start = { ...base, checkpoint: '', dataset: DatasetSource.parse({ kind: 'builtin', split: 'test' }) };
      break;
    case 'finetune':
      start = { ...base, source: { kind: 'pretrained', checkpoint: '' } };
      break;
    default:
      start = base;
  }
  return withDefaults(kind, start) ?? start;
}
