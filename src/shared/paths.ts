/** Reading and writing a plain JSON-like value at a path of keys and indices (forms, sweeps). */
export type FieldPath = readonly (string | number)[];

export function pathKey(path: FieldPath): string {
  return path.join('.');
}

function isContainer(value: unknown): value is Record<string | number, unknown> {
  return typeof value === 'object' && value !== null;
}

export function getAt(root: unknown, path: FieldPath): unknown {
  let current = root;
  for (const key of path) {
    if (!isContainer(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** A copy of `root` with `value` at `path` (undefined deletes an object key); missing parents become objects. */
export function setAt(root: unknown, path: FieldPath, value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  const container: Record<string | number, unknown> | unknown[] = Array.isArray(root)
    ? [...(root as unknown[])]
    : isContainer(root)
      ? { ...root }
      : {};
  const child = setAt((container as Record<string | number, unknown>)[head], rest, value);
  if (child === undefined && !Array.isArray(container)) {
    delete (container as Record<string | number, unknown>)[head];
  } else {
    (container as Record<string | number, unknown>)[head] = child;
  }
  return container;
}
