import { describe, expect, it } from 'vitest';
import { JOB_KINDS } from '../../src/shared/engine-protocol';
import { docKey, fieldDoc, humanize, type FormSpec } from '../../src/renderer/src/forms/form-spec';
import { FORM_SPECS } from '../../src/renderer/src/forms/form-specs';
import { setAt } from '../../src/renderer/src/forms/paths';
import type { FormNode } from '../../src/renderer/src/forms/schema-walk';
import { startingConfig, withDefaults } from '../../src/renderer/src/forms/starting-config';

/** Every value path a form can show, options of unions and list elements included. */
function paths(node: FormNode, prefix: string[], out: string[][]): void {
  if (node.kind === 'object') {
    for (const field of node.fields) {
      out.push([...prefix, field.key]);
      paths(field.node, [...prefix, field.key], out);
    }
  } else if (node.kind === 'tagged-union') {
    for (const option of node.options) paths(option.node, prefix, out);
  } else if (node.kind === 'union') {
    for (const option of node.options) paths(option, prefix, out);
  } else if (node.kind === 'array') {
    paths(node.element, prefix, out);
  }
}

function nodes(node: FormNode, out: FormNode[]): FormNode[] {
  out.push(node);
  if (node.kind === 'object') for (const field of node.fields) nodes(field.node, out);
  if (node.kind === 'tagged-union') for (const option of node.options) nodes(option.node, out);
  if (node.kind === 'union') for (const option of node.options) nodes(option, out);
  if (node.kind === 'array') nodes(node.element, out);
  if (node.kind === 'tuple') for (const item of node.items) nodes(item, out);
  return out;
}

describe.each(JOB_KINDS)('the %s form', (kind) => {
  const spec: FormSpec = FORM_SPECS[kind];

  it('reads every field of its schema as a control (none falls back to raw JSON)', () => {
    expect(nodes(spec.node, []).filter((node) => node.kind === 'json')).toEqual([]);
  });

  it('names every field it shows and lays every top-level field out in a section', () => {
    const all: string[][] = [];
    paths(spec.node, [], all);
    const unnamed = [...new Set(all.map(docKey))].filter(
      (key) => !fieldDoc(spec, key.split('.')).label && !['kind', 'attack'].includes(key.split('.').at(-1) ?? ''),
    );
    expect(
      unnamed,
      `fields labelled only as ${unnamed.map((k) => humanize(k.split('.').at(-1) ?? '')).join(', ')}`,
    ).toEqual([]);
    const laidOut = spec.sections.flatMap((section) => section.keys);
    expect([...laidOut].sort()).toEqual(spec.node.fields.map((field) => field.key).sort());
  });

  it('starts from a config its schema accepts once the required checkpoint is named', () => {
    let config = startingConfig(kind);
    if (kind === 'finetune') config = setAt(config, ['source', 'checkpoint'], '/runs/a') as Record<string, unknown>;
    if (kind === 'evaluate' || kind === 'landscape') config = { ...config, checkpoint: '/runs/a' };
    const parsed = spec.schema.safeParse(config);
    expect(parsed.success, parsed.success ? '' : parsed.error.message).toBe(true);
    // Every value the schema would fill in is already there, so the form shows it.
    expect(parsed.success && parsed.data).toEqual(config);
    // ...and no checkpoint is guessed: the form shows that one is missing.
    if (kind !== 'pretrain') expect(spec.schema.safeParse(startingConfig(kind)).success).toBe(false);
  });

  it('writes out the defaults of a partial config and keeps an empty checkpoint empty', () => {
    const partial: Record<string, unknown> = {
      pretrain: { epochs: 3 },
      finetune: { source: { kind: 'pretrained', checkpoint: '' } },
      evaluate: {
        checkpoint: '',
        dataset: { kind: 'builtin' },
        examples: { count: 8 },
        attacks: [{ attack: 'natural' }],
      },
      landscape: { checkpoint: '', dataset: { kind: 'builtin' } },
    }[kind];
    const full = withDefaults(kind, partial);
    expect(full).not.toBeNull();
    const dataset = (full?.dataset ?? {}) as Record<string, unknown>;
    expect(dataset).toMatchObject({ kind: 'builtin', split: 'train', seed: 0, imageSize: 32 });
    if (kind === 'finetune') expect(full).toMatchObject({ source: { checkpoint: '' }, threat: { norm: 'linf' } });
    if (kind === 'evaluate' || kind === 'landscape') expect(full?.checkpoint).toBe('');
    expect(withDefaults(kind, { ...partial, dataset: { kind: 'nope' } })).toBeNull();
  });
});

describe('form rules', () => {
  it('shows a fine-tuning method’s own settings only with that method', () => {
    const spec = FORM_SPECS.finetune;
    expect(spec.hidden(['trades'], { method: 'pgd-at' })).toBe(true);
    expect(spec.hidden(['trades'], { method: 'trades' })).toBe(false);
    expect(spec.hidden(['attack'], { method: 'trades' })).toBe(false);
    expect(spec.hidden(['trades', 'beta'], { method: 'pgd-at' })).toBe(false);
  });

  it('greys out what the chosen mode or loss leaves unused', () => {
    expect(FORM_SPECS.pretrain.inactiveReason(['attack', 'eps'], { mode: 'mae' })).toMatch(/not used/);
    expect(FORM_SPECS.pretrain.inactiveReason(['attack', 'eps'], { mode: 'mimir' })).toBeNull();
    expect(FORM_SPECS.landscape.inactiveReason(['pgd', 'steps'], { loss: 'ce' })).toMatch(/pgd-ce/);
    expect(FORM_SPECS.landscape.inactiveReason(['pgd', 'steps'], { loss: 'pgd-ce' })).toBeNull();
  });

  it('warns above the pre-training form when the MI penalty is negligible, not for the default nhsic', () => {
    const start = startingConfig('pretrain');
    const config = (mi: Record<string, unknown>, mode = 'mimir') =>
      withDefaults('pretrain', { ...start, mode, mi: { ...(start.mi as Record<string, unknown>), ...mi } });
    const warnings = (c: unknown) => FORM_SPECS.pretrain.warnings?.(c) ?? [];
    expect(warnings(config({}))).toEqual([]); // nhsic, lambda 1e-5
    const [hsic] = warnings(config({ estimator: 'hsic' }));
    expect(hsic).toMatch(/MI penalty is negligible: lambda \* MI \/ recon = 6\.7e-12 with hsic's typical MI/);
    expect(hsic).toMatch(/use estimator nhsic/);
    expect(warnings(config({ estimator: 'hsic', lambda: 100 }))).toEqual([]);
    expect(warnings(config({ estimator: 'renyi' }))).toHaveLength(1);
    expect(warnings(config({ estimator: 'hsic' }, 'adv-mae'))).toEqual([]);
    // Away from the default kernel the typical values do not hold: the run's first-batch check speaks instead.
    expect(warnings(config({ estimator: 'hsic', bandwidth: 'median' }))).toEqual([]);
    expect(FORM_SPECS.finetune.warnings?.({}) ?? []).toEqual([]);
  });
});
