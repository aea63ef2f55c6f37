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
  /** What an emptied control stores: null where the schema allows it, else nothing. */
  const emptyValue = computed(() => (props.node.nullable ? null : undefined));
  return {
    form,
    doc,
    value,
    id,
    testId,
    label: computed(() => fieldLabel(form.spec(), props.path)),
    issues,
    inactive: computed(() => form.spec().inactiveReason(props.path, form.root())),
    // A model preset explains itself better than the field's general help.
    help: computed(
      () =>
        form.spec().valueHelp(props.path, value.value, form.root()) ?? doc.value.help ?? props.node.description ?? null,
    ),
    emptyValue,
    /** The props of a NumberInput for this field's value (with `int` and a label or placeholder added). */
    numberInput: computed(() => ({
      id: id.value,
      value: value.value,
      emptyValue: emptyValue.value,
      invalid: issues.value.length > 0,
      testId: testId.value,
    })),
    set: (next: unknown): void => form.set(props.path, next),
  };
}
