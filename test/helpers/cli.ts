import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { RunEvent } from '../../src/shared/run-events';
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

/** The run events of a `--json` command's stdout, one per line, each checked against the schema. */
export function events(stdout: string): RunEvent[] {
  return stdout
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => RunEvent.parse(JSON.parse(line)));
}

/** Start `mimir <args> --json` and SIGKILL it as soon as it reports the checkpoint of `epoch`. */
export function runAndKillAfterCheckpoint(args: string[], epoch: number): Promise<RunEvent[]> {
  requireBuilt('main/cli.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/mimir.mjs'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    const seen: RunEvent[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const event = RunEvent.parse(JSON.parse(line));
        seen.push(event);
        if (event.type === 'checkpoint' && event.epoch === epoch) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`the run ended by itself (code ${code}) before it could be killed`));
      else resolve(seen);
    });
  });
}

/** Run a `mimir ... --json` command that must succeed (else the test fails with its stderr); its run events. */
export function runEvents(args: string[], env: NodeJS.ProcessEnv = {}): RunEvent[] {
  const run = runMimir(args, env);
  expect(run.status, run.stderr).toBe(0);
  return events(run.stdout);
}

/**
 * `mimir finetune --from <from> --method pgd-at --json` on the builtin dataset at micro size (32 images
 * of 16 px, batch 8) for `epochs` epochs, settings from the `config` file, into `out`.
 */
export function pgdAtFinetuneArgs(
  from: string,
  config: string,
  out: string,
  { epochs = 1, engine }: { epochs?: number; engine?: 'torch' } = {},
): string[] {
  return [
    'finetune',
    ...(engine ? ['--engine', engine] : []),
    '--from',
    from,
    '--method',
    'pgd-at',
    '--dataset-size',
    '32',
    '--image-size',
    '16',
    '--batch',
    '8',
    '--epochs',
    String(epochs),
    '--config',
    config,
    '--out',
    out,
    '--json',
  ];
}
