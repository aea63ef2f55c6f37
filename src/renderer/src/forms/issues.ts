import type { z } from 'zod';
import { pathKey, type FieldPath } from './paths';

/** A zod issue as far as the form needs it (invalid_union carries the issues of each option). */
interface IssueLike {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  errors?: readonly (readonly IssueLike[])[];
}

/** Issues that say "this is the wrong kind of value for this option", rather than what is wrong inside it. */
function isMismatch(issues: readonly IssueLike[]): boolean {
  return issues.some(
    (issue) => issue.path.length === 0 && (issue.code === 'invalid_type' || issue.code === 'invalid_value'),
  );
}

function flatten(issue: IssueLike, prefix: FieldPath, out: Map<string, string[]>): void {
  const path = [...prefix, ...issue.path.map((key) => (typeof key === 'number' ? key : String(key)))];
  if (issue.code === 'invalid_union' && issue.errors && issue.errors.length > 0) {
    // Report the option the value was meant for: the one whose problems are inside it, not its kind.
    const branch = issue.errors.find((errors) => !isMismatch(errors)) ?? issue.errors[0] ?? [];
    for (const nested of branch) flatten(nested, path, out);
    return;
  }
  const key = pathKey(path);
  const list = out.get(key) ?? [];
  if (!list.includes(issue.message)) list.push(issue.message);
  out.set(key, list);
}

/** The schema's messages keyed by field path ("attack.eps"; "" for the whole value). */
export function issuesByPath(error: z.ZodError | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const issue of error?.issues ?? []) flatten(issue as IssueLike, [], out);
  return out;
}
