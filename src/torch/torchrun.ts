import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { defaultHome } from '@engine/io/home';
import { writeFileAtomic } from '@engine/io/atomic-file';
import type { TorchPython } from './python';

/**
 * How the ranks of a PyTorch run start: torchrun (`python -m torch.distributed.run`) where it works,
 * else the launcher itself starts one process per rank with the environment torchrun would set
 * (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Debian's torch 1.13 torchrun does not
 * start on Python 3.11 (elastic's multiprocessing breaks on an enum change), so whether it works is
 * probed: a one-rank torchrun of mimir_torch.rank_probe, whose result is cached per torchrun command
 * and torch version in $MIMIR_HOME/cache/torchrun-probe.json. $MIMIR_TORCHRUN replaces the torchrun
 * command (an executable taking torchrun's arguments).
 */

export const TORCHRUN_ENV = 'MIMIR_TORCHRUN';
const PROBE_TIMEOUT_MS = 90_000;

export interface RankLauncher {
  kind: 'torchrun' | 'own';
  /** The torchrun command (empty for 'own'). */
  command: string[];
  /** Why this launcher: the probe's outcome. */
  reason: string;
}

const ProbeCache = z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string() }));
type ProbeCache = z.infer<typeof ProbeCache>;

function cacheFile(): string {
  return path.join(defaultHome(), 'cache', 'torchrun-probe.json');
}

async function readCache(): Promise<ProbeCache> {
  try {
    return ProbeCache.parse(JSON.parse(await readFile(cacheFile(), 'utf8')));
  } catch {
    return {}; // no cache yet, or one from another version of the workbench: probe again
  }
}

export function torchrunCommand(python: TorchPython, env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env[TORCHRUN_ENV];
  return override ? [override] : [python.executable, '-m', 'torch.distributed.run'];
}

/** The arguments torchrun gets for `nproc` ranks per node (a static rendezvous at masterAddr:masterPort). */
export function torchrunArgs(launch: {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}): string[] {
  return [
    '--nproc_per_node',
    String(launch.nproc),
    '--nnodes',
    String(launch.nnodes),
    '--node_rank',
    String(launch.nodeRank),
    '--master_addr',
    launch.masterAddr,
    '--master_port',
    String(launch.masterPort),
    '--max_restarts',
    '0',
  ];
}

function runProbe(command: string[], pythonPath: string, port: number): Promise<{ ok: boolean; detail: string }> {
  const [executable, ...rest] = command;
  if (!executable) return Promise.resolve({ ok: false, detail: 'no torchrun command' });
  const args = [
    ...rest,
    ...torchrunArgs({ nproc: 1, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: port }),
    '-m',
    'mimir_torch.rank_probe',
  ];
  return new Promise((resolve) => {
    const child = spawn(executable, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONPATH: pythonPath },
      timeout: PROBE_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => resolve({ ok: false, detail: error.message }));
    child.on('close', (code, signal) => {
      const seen = stdout
        .split('\n')
        .map((line) => line.trim())
        .find((line) => line.startsWith('{'));
      const expected = JSON.stringify({ rank: '0', worldSize: '1', localRank: '0', masterAddr: '127.0.0.1' });
      if (code === 0 && seen !== undefined && JSON.stringify(JSON.parse(seen)) === expected) {
        resolve({ ok: true, detail: 'a one-rank probe started with RANK 0 of WORLD_SIZE 1' });
        return;
      }
      const lastError = stderr
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => /Error|error:/.test(line))
        .pop();
      const why = lastError ?? (signal ? `killed by ${signal}` : `exit ${code}`);
      resolve({ ok: false, detail: `its one-rank probe failed (${why})` });
    });
  });
}

/**
 * torchrun when its probe passes, else the launcher's own ranks. The probe runs once per torchrun
 * command and torch version (cached on disk: later runs and `mimir doctor` do not pay for it).
 */
export async function chooseLauncher(
  python: TorchPython,
  pythonPath: string,
  freePort: () => Promise<number>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RankLauncher> {
  const command = torchrunCommand(python, env);
  const key = `${command.join(' ')}|torch ${python.torch}`;
  const cache = await readCache();
  let result = cache[key];
  if (!result) {
    result = await runProbe(command, pythonPath, await freePort());
    await mkdir(path.dirname(cacheFile()), { recursive: true });
    await writeFileAtomic(cacheFile(), `${JSON.stringify({ ...cache, [key]: result }, null, 2)}\n`);
  }
  const shown = command.join(' ');
  return result.ok
    ? { kind: 'torchrun', command, reason: `${shown} works: ${result.detail}` }
    : {
        kind: 'own',
        command: [],
        reason: `${shown} cannot start here: ${result.detail}; the launcher starts the ranks itself with RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT set`,
      };
}
