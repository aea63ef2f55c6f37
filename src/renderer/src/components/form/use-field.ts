import { computed } from 'vue';
import { fieldId, fieldTestId, useFormModel } from '../../forms/form-model';
import { fieldDoc, fieldLabel } from '../../forms/form-spec';
import type { FieldPath } from '../../forms/paths';
import type { FormNode } from '../../forms/schema-walk';

/** What every field component of a schema-driven form reads about its field: names, value, issues, help. */
export function useField(props: { node: FormNode; path: FieldPath }) {
  const form = useFormModel();
  const doc = computed(() => fieldDoc(form.spec(), props.path));
  const value = computed(() => form.get(props.path));
  const id = computed(() => fieldId(props.path));
  const testId = computed(() => fieldTestId(props.path));
  const issues = computed(() => form.issuesAt(props.path));
  const label = computed(() => fieldLabel(form.spec(), props.path));
  const inactive = computed(() => form.spec().inactiveReason(props.path, form.root()));
  // A model preset explains itself better than the field's general help.
  const help = computed(
    () =>
      form.spec().valueHelp(props.path, value.value, form.root()) ?? doc.value.help ?? props.node.description ?? null,
  );
  /** What an emptied control stores: null where the schema allows it, else nothing. */
  const emptyValue = computed(() => (props.node.nullable ? null : undefined));
  const set = (next: unknown): void => form.set(props.path, next);
  return {
    form,
    doc,
    value,
    id,
    testId,
    label,
    issues,
    inactive,
    help,
    emptyValue,
    /** The FieldShell props every field passes on (v-bind): id, label, help, issues, why it is inactive. */
    shell: computed(() => ({
      id: id.value,
      label: label.value,
      help: help.value,
      issues: issues.value,
      inactive: inactive.value,
    })),
    /** The props of a NumberInput for this field's value (with `int` and a label or placeholder added). */
    numberInput: computed(() => ({
      id: id.value,
      value: value.value,
      emptyValue: emptyValue.value,
      invalid: issues.value.length > 0,
      testId: testId.value,
    })),
    set,
    /** A <select> of the field's options: the one chosen, or the empty value for an optional field's blank option. */
    onSelect(event: Event): void {
      const chosen = (event.target as HTMLSelectElement).value;
      set(chosen === '' && (props.node.optional || props.node.nullable) ? emptyValue.value : chosen);
    },
  };
}
