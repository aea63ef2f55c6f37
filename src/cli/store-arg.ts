import { existsSync } from 'node:fs';
import path from 'node:path';
import type { RunStore } from '@store/run-store';
import { defaultHome } from './output';

/**
 * The experiment store of `--data-dir` (default ~/.mimir, or $MIMIR_HOME) for a command that reads
 * it; a folder without one is an error that says where it looked, not a new empty store.
 */
export async function openExistingStore(dataDir: string | undefined): Promise<RunStore> {
  const file = path.join(dataDir ?? defaultHome(), 'mimir.db');
  if (!existsSync(file)) throw new Error(`There is no experiment store at ${file}: give --data-dir or set MIMIR_HOME.`);
  const { RunStore } = await import('@store/run-store');
  return RunStore.open(file);
}
