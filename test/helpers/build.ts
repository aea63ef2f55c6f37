import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Paths of the build; `npm test` builds first, a test run by hand needs `npm run build` once. */
export function requireBuilt(relative: string): string {
  const file = path.join(ROOT, 'out', relative);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before this test.`);
  return file;
}
