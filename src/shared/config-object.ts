import { z } from 'zod';

/**
 * The object schema of a run config's section: unknown keys are errors (a misspelt `batchsize` must
 * not silently run with the default batch size), and the message names the key and, where one is
 * close, the known key that was meant.
 */
export function configObject<Shape extends z.core.$ZodLooseShape>(shape: Shape): z.ZodObject<Shape, z.core.$strict> {
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      const owner = issue.inst;
      const known = owner instanceof z.ZodObject ? Object.keys(owner.shape) : [];
      return issue.keys.map((key) => unknownKeyMessage(key, known)).join('; ');
    },
  });
}

/** `unknown key "batchsize" (did you mean "batchSize"?)`, or the known keys when none is close. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = closestKey(key, known);
  if (suggestion !== null) return `unknown key "${key}" (did you mean "${suggestion}"?)`;
  return `unknown key "${key}"; known keys: ${known.join(', ')}`;
}

/** The known key nearest to `key` (case-insensitive edit distance at most 2, or a third of its length), or null. */
export function closestKey(key: string, known: readonly string[]): string | null {
  const lower = key.toLowerCase();
  let best: { key: string; distance: number } | null = null;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (best === null || distance < best.distance) best = { key: candidate, distance };
  }
  if (best === null || best.distance > Math.max(2, Math.floor(key.length / 3))) return null;
  return best.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/** Each issue of a zod error as `field.path: problem` (`root` names a whole-object issue). */
export function issueLines(error: z.ZodError, root = '(config)'): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.') || root}: ${issue.message}`);
}

/** A zod error as one line: `field.path: problem; other: problem`. */
export function describeIssues(error: z.ZodError, root = '(config)'): string {
  return issueLines(error, root).join('; ');
}
