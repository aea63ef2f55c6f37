import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { ROOT, requireBuilt } from './build';

/** Run the built `mimir` command (bin/mimir.mjs) on this test's Node, as `npx mimir` would. */
export function runMimir(args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  requireBuilt('main/cli.js');
  return spawnSync(process.execPath, [path.join(ROOT, 'bin/mimir.mjs'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
}
