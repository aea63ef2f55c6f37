import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'mimir-workbench';

let knownRoot: string | null = null;

/**
 * The workbench's package root: the nearest folder above this module whose package.json is ours.
 * Found once per process (synchronous reads, which Electron's main process should not repeat per job).
 */
export function packageRoot(): string {
  knownRoot ??= findPackageRoot();
  return knownRoot;
}

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === PACKAGE_NAME
    ) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`Cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}.`);
    dir = parent;
  }
}

/** A file or folder of the build output, e.g. `main/engine-process.js` or `renderer`. */
export function builtFile(relative: string): string {
  const file = path.join(packageRoot(), 'out', relative);
  if (!existsSync(file)) throw new Error(`${file} is not built; run \`npm run build\`.`);
  return file;
}
