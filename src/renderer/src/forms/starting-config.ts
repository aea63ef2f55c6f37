import { DatasetSource } from '../../../shared/dataset-config';
import type { JobKind } from '../../../shared/engine-protocol';
import { FORM_SPECS } from './form-specs';
import { defaultValueOf } from './schema-walk';

/** Where each kind starts without a run behind it: the schema's defaults, completed where the schema cannot. */
export function startingConfig(kind: JobKind): Record<string, unknown> {
  const spec = FORM_SPECS[kind];
  const parsed = spec.schema.safeParse({});
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const base = defaultValueOf(spec.node) as Record<string, unknown>;
  switch (kind) {
    case 'evaluate':
      return {
        ...base,
        checkpoint: '',
        dataset: DatasetSource.parse({ kind: 'builtin', split: 'test' }),
        examples: { count: 1000, pick: 'first' },
        attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
      };
    case 'landscape':
      return { ...base, checkpoint: '', dataset: DatasetSource.parse({ kind: 'builtin', split: 'test' }) };
    case 'finetune':
      return { ...base, source: { kind: 'pretrained', checkpoint: '' } };
    default:
      return base;
  }
}
