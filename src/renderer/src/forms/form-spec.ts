import type { z } from 'zod';
import type { CheckpointKind } from '@shared/checkpoint';
import type { JobKind } from '@shared/engine-protocol';
import { describeSchema, type FormNode, type FormNodeOf } from './schema-walk';
import type { FieldPath } from './paths';

/**
 * A run kind's form: its schema read as fields, plus what a form needs that the schema cannot say
 * at run time (zod keeps no doc comments): labels, help, section layout, special controls, and which
 * fields the current config leaves unused. A field no doc names still renders, labelled from its key.
 */

/** A control other than the one the field's schema shape implies. */
export type FieldWidget =
  /** A checkpoint path with a picker of the stored runs' checkpoints (of one kind, or any). */
  | {
      kind: 'checkpoint';
      checkpointKind: CheckpointKind | null;
      /** Say under the field which engine evaluates the chosen checkpoint (the evaluation form). */
      engineLine?: boolean;
    }
  /** The evaluation's attack list as checkboxes, each checked attack with its own settings. */
  | { kind: 'attacks' };

export interface FieldDoc {
  label?: string;
  help?: string;
  /** Shown in an empty optional/nullable field. */
  placeholder?: string;
  /** Names of a plain union's options, in schema order. */
  optionNames?: string[];
  widget?: FieldWidget;
}

export interface FormSection {
  id: string;
  title: string;
  /** Top-level keys shown in this section, in order; an object key shows its fields. */
  keys: string[];
}

export interface FormSpec {
  kind: JobKind;
  /** "New pre-training run". */
  title: string;
  schema: z.ZodType;
  node: FormNodeOf<'object'>;
  /** Keys are value paths without indices or union option names: "dataset.size", "model.width". */
  docs: Record<string, FieldDoc>;
  /** Every top-level field is in a section (fields no section names are gathered in "Other"). */
  sections: FormSection[];
  /** Why a field does nothing with the current config (shown, greyed), or null. */
  inactiveReason(path: FieldPath, config: unknown): string | null;
  /** Fields not shown with the current config (another method's settings), kept at their values. */
  hidden(path: FieldPath, config: unknown): boolean;
  /** The help of a field that depends on its value (a model preset explains itself), and on the whole config. */
  valueHelp(path: FieldPath, value: unknown, config: unknown): string | null;
  /** The value a plain union's object option starts from (a custom model from the chosen preset). */
  objectOptionStart(path: FieldPath, config: unknown): Record<string, unknown> | null;
  /** Warnings about a valid config that will not do what its user likely wants (shown above the form). */
  warnings?(config: unknown): string[];
}

export function objectNode(schema: z.ZodType, what: string): FormNodeOf<'object'> {
  const node = describeSchema(schema);
  if (node.kind !== 'object') throw new Error(`The ${what} schema is not an object.`);
  return node;
}

/** The sections, with any schema field no section names gathered in a last one. */
export function withOtherSection(node: FormNodeOf<'object'>, sections: FormSection[]): FormSection[] {
  const listed = new Set(sections.flatMap((section) => section.keys));
  const rest = node.fields.map((field) => field.key).filter((key) => !listed.has(key));
  return rest.length > 0 ? [...sections, { id: 'other', title: 'Other', keys: rest }] : sections;
}

export function humanize(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The docs key of a value path: numeric indices (tuple and list items) are dropped. */
export function docKey(path: FieldPath): string {
  return path.filter((part) => typeof part === 'string').join('.');
}

export function fieldDoc(spec: Pick<FormSpec, 'docs'>, path: FieldPath): FieldDoc {
  return spec.docs[docKey(path)] ?? {};
}

export function fieldLabel(spec: Pick<FormSpec, 'docs'>, path: FieldPath): string {
  const last = [...path].reverse().find((part) => typeof part === 'string');
  return fieldDoc(spec, path).label ?? humanize(String(last ?? ''));
}

export function topLevelNode(spec: FormSpec, key: string): FormNode | undefined {
  return spec.node.fields.find((field) => field.key === key)?.node;
}

/** The same docs under another prefix ("model.width" -> "source.model.width"). */
export function prefixDocs(prefix: string, docs: Record<string, FieldDoc>, from: string): Record<string, FieldDoc> {
  const out: Record<string, FieldDoc> = {};
  for (const [key, doc] of Object.entries(docs)) {
    if (key === from) out[prefix] = doc;
    else if (key.startsWith(`${from}.`)) out[`${prefix}${key.slice(from.length)}`] = doc;
  }
  return out;
}
