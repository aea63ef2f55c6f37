import os from 'node:os';
import path from 'node:path';

/** The workbench's own folder for the store, the runs and caches: $MIMIR_HOME, or ~/.mimir. */
export function defaultHome(): string {
  return process.env.MIMIR_HOME ?? path.join(os.homedir(), '.mimir');
}
