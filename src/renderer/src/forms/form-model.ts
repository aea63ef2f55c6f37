import { inject, type InjectionKey } from 'vue';
import type { FormSpec } from './form-spec';
import type { FieldPath } from './paths';

/** What the schema-driven fields read and write: the form's value, by path, and the schema's issues. */
export interface FormModel {
  /** The form's kind: docs, sections and rules. */
  spec(): FormSpec;
  /** The whole value (for rules that look at other fields, e.g. "unused in mode mae"). */
  root(): unknown;
  get(path: FieldPath): unknown;
  set(path: FieldPath, value: unknown): void;
  issuesAt(path: FieldPath): string[];
}

export const FORM_MODEL: InjectionKey<FormModel> = Symbol('form-model');

export function useFormModel(): FormModel {
  const model = inject(FORM_MODEL);
  if (!model) throw new Error('A schema field needs a form model (provide FORM_MODEL).');
  return model;
}

export function fieldId(path: FieldPath): string {
  return `field-${path.join('-')}`;
}

export function fieldTestId(path: FieldPath): string {
  return `field-${path.join('.')}`;
}
