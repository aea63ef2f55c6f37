import { z } from 'zod';
import { isRecord } from '@shared/unknown-value';

/**
 * A zod 4 schema read as a form: which control each field needs, with the schema's own defaults,
 * bounds, options and descriptions. Only the shapes run configs use are handled; anything else is
 * shown as JSON text (`kind: 'json'`), so a new schema feature degrades to an editable field.
 */

export interface FieldMeta {
  /** The schema's default (`.default` or `.prefault`), when it has one. */
  defaultValue: unknown;
  hasDefault: boolean;
  /** May be left out (undefined). */
  optional: boolean;
  /** May be null (e.g. "no clipping"). */
  nullable: boolean;
  /** From `.describe()` anywhere on the field's wrappers. */
  description: string | null;
}

export interface ObjectField {
  key: string;
  node: FormNode;
}

export type FormNode = FieldMeta &
  (
    | { kind: 'object'; fields: ObjectField[] }
    | { kind: 'number'; int: boolean; min: number | null; max: number | null }
    | { kind: 'boolean' }
    | { kind: 'enum'; options: string[] }
    | { kind: 'string' }
    | { kind: 'literal'; value: string | number | boolean | null }
    | { kind: 'tuple'; items: FormNode[] }
    | { kind: 'array'; element: FormNode }
    /** A union of objects told apart by one literal field (dataset kind, augmentation kind). */
    | { kind: 'tagged-union'; discriminator: string; options: { tag: string; node: FormNode }[] }
    /** Any other union, e.g. a model preset name or a full model config. */
    | { kind: 'union'; options: FormNode[] }
    | { kind: 'json' }
  );

export type FormNodeOf<K extends FormNode['kind']> = Extract<FormNode, { kind: K }>;

const SAFE_LIMIT = Number.MAX_SAFE_INTEGER;

function bound(value: number | null | undefined): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return Math.abs(value) >= SAFE_LIMIT ? null : value;
}

export function describeSchema(schema: z.ZodType): FormNode {
  const meta: FieldMeta = {
    defaultValue: undefined,
    hasDefault: false,
    optional: false,
    nullable: false,
    description: null,
  };
  let current: z.ZodType = schema;
  // Peel the wrappers, keeping what they say about the field.
  for (;;) {
    meta.description ??= current.description ?? null;
    if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      if (!meta.hasDefault) {
        meta.hasDefault = true;
        meta.defaultValue = structuredClone(current.def.defaultValue);
      }
      current = current.def.innerType as z.ZodType;
    } else if (current instanceof z.ZodOptional) {
      meta.optional = true;
      current = current.def.innerType as z.ZodType;
    } else if (current instanceof z.ZodNullable) {
      meta.nullable = true;
      current = current.def.innerType as z.ZodType;
    } else {
      break;
    }
  }
  meta.description ??= current.description ?? null;

  if (current instanceof z.ZodObject) {
    const shape = current.shape as Record<string, z.ZodType>;
    return {
      ...meta,
      kind: 'object',
      fields: Object.entries(shape).map(([key, child]) => ({ key, node: describeSchema(child) })),
    };
  }
  if (current instanceof z.ZodNumber) {
    return { ...meta, kind: 'number', int: current.isInt, min: bound(current.minValue), max: bound(current.maxValue) };
  }
  if (current instanceof z.ZodBoolean) return { ...meta, kind: 'boolean' };
  if (current instanceof z.ZodEnum) {
    return { ...meta, kind: 'enum', options: current.options.map((option) => String(option)) };
  }
  if (current instanceof z.ZodString) return { ...meta, kind: 'string' };
  if (current instanceof z.ZodLiteral) {
    const value = current.value;
    return {
      ...meta,
      kind: 'literal',
      value: typeof value === 'bigint' || typeof value === 'undefined' ? String(value) : value,
    };
  }
  if (current instanceof z.ZodTuple) {
    return { ...meta, kind: 'tuple', items: (current.def.items as z.ZodType[]).map(describeSchema) };
  }
  if (current instanceof z.ZodArray) {
    return { ...meta, kind: 'array', element: describeSchema(current.def.element as z.ZodType) };
  }
  if (current instanceof z.ZodDiscriminatedUnion) {
    const discriminator = current.def.discriminator;
    const options = (current.def.options as z.ZodType[]).map((option) => {
      const node = describeSchema(option);
      const tagField = node.kind === 'object' ? node.fields.find((f) => f.key === discriminator) : undefined;
      const tag = tagField?.node.kind === 'literal' ? String(tagField.node.value) : '?';
      return { tag, node };
    });
    return { ...meta, kind: 'tagged-union', discriminator, options };
  }
  if (current instanceof z.ZodUnion) {
    const options = (current.def.options as z.ZodType[]).map(describeSchema);
    // Names and string literals only (a table name or 'auto'): one choice among them all.
    const isName = (option: FormNode) =>
      option.kind === 'enum' || (option.kind === 'literal' && typeof option.value === 'string');
    if (options.every(isName)) {
      const names = options.flatMap((option) =>
        option.kind === 'enum' ? option.options : option.kind === 'literal' ? [String(option.value)] : [],
      );
      return { ...meta, kind: 'enum', options: names };
    }
    return { ...meta, kind: 'union', options };
  }
  return { ...meta, kind: 'json' };
}

/**
 * A value for `node` built from defaults only (objects get each field's default; required fields stay
 * empty). An object's own default may be partial (a `.prefault({})` is parsed, not used as is), so it is
 * laid over the defaults of its fields.
 */
export function defaultValueOf(node: FormNode): unknown {
  if (node.hasDefault) {
    const given = structuredClone(node.defaultValue);
    if (!isRecord(given)) return given;
    if (node.kind === 'object') return { ...fieldDefaults(node), ...given };
    if (node.kind === 'tagged-union') {
      const option = node.options.find((o) => o.tag === String(given[node.discriminator]));
      const base = option ? defaultValueOf({ ...option.node, hasDefault: false }) : {};
      return { ...(isRecord(base) ? base : {}), ...given };
    }
    return given;
  }
  if (node.optional) return undefined;
  if (node.nullable) return null;
  switch (node.kind) {
    case 'object':
      return fieldDefaults(node);
    case 'literal':
      return node.value;
    case 'enum':
      return node.options[0];
    case 'boolean':
      return false;
    case 'tuple':
      return node.items.map(defaultValueOf);
    case 'array':
      return [];
    case 'tagged-union':
      return node.options[0] ? defaultValueOf(node.options[0].node) : undefined;
    case 'union':
      return node.options[0] ? defaultValueOf(node.options[0]) : undefined;
    default:
      return undefined;
  }
}

function fieldDefaults(node: FormNodeOf<'object'>): Record<string, unknown> {
  const value: Record<string, unknown> = {};
  for (const field of node.fields) {
    const child = defaultValueOf(field.node);
    if (child !== undefined) value[field.key] = child;
  }
  return value;
}

/** Which option of a plain union a value belongs to (the first whose kind fits), or -1. */
export function unionOptionIndex(node: FormNodeOf<'union'>, value: unknown): number {
  return node.options.findIndex((option) => valueFits(option, value));
}

function valueFits(node: FormNode, value: unknown): boolean {
  switch (node.kind) {
    case 'object':
      return isRecord(value);
    case 'enum':
      return typeof value === 'string' && node.options.includes(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'literal':
      return value === node.value;
    case 'tuple':
    case 'array':
      return Array.isArray(value);
    default:
      return false;
  }
}
