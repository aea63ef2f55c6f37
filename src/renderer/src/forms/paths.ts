// The path helpers live in src/shared (sweeps use them too); the forms import them from here.
export { getAt, pathKey, setAt, type FieldPath } from '@shared/paths';
