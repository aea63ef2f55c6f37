import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SystemReport } from '../../src/shared/system';
import { events, runMimir } from '../helpers/cli';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * Who starts the ranks (src/torch/torchrun.ts): torchrun where a one-rank probe of it works, else the
 * launcher with the rank environment. The torchrun path runs through a stand-in written here, which
 * records its arguments and then does what torchrun does (one process per rank with RANK, WORLD_SIZE,
 * LOCAL_RANK, MASTER_ADDR and MASTER_PORT set); the fallback runs with the real torch of this machine.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-torchrun-'));
const MICRO = ['--model', 'micro', '--image-size', '16', '--dataset-size', '32', '--batch', '8', '--epochs', '1'];
const THREADS = { OMP_NUM_THREADS: '1' };

function standInTorchrun(python: string, dir: string): { file: string; calls: string } {
  const file = path.join(dir, 'torchrun');
  const calls = path.join(dir, 'calls.jsonl');
  writeFileSync(
    file,
    `#!${python}
import argparse, json, os, signal, subprocess, sys
parser = argparse.ArgumentParser()
for flag in ("--nproc_per_node", "--nnodes", "--node_rank", "--master_port", "--max_restarts"):
    parser.add_argument(flag, type=int, required=True)
parser.add_argument("--master_addr", required=True)
parser.add_argument("-m", dest="module", required=True)
args, rest = parser.parse_known_args()
with open(${JSON.stringify(calls)}, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "module": args.module}) + "\\n")
children = []
for local in range(args.nproc_per_node):
    env = dict(os.environ, RANK=str(args.node_rank * args.nproc_per_node + local), LOCAL_RANK=str(local),
               WORLD_SIZE=str(args.nnodes * args.nproc_per_node), LOCAL_WORLD_SIZE=str(args.nproc_per_node),
               MASTER_ADDR=args.master_addr, MASTER_PORT=str(args.master_port))
    children.append(subprocess.Popen([sys.executable, "-m", args.module, *rest], env=env))
signal.signal(signal.SIGTERM, lambda *_: [c.send_signal(signal.SIGTERM) for c in children])
codes = [c.wait() for c in children]
sys.exit(next((c for c in codes if c != 0), 0))
`,
  );
  chmodSync(file, 0o755);
  return { file, calls };
}

describe('torchrun where it works, its own ranks where it cannot', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }

  it('a torchrun that passes the probe starts the ranks: --nproc 2 trains to done, each event once; the probe is cached', () => {
    const dir = tmp();
    const { file, calls } = standInTorchrun(python.executable, dir);
    const env = { ...THREADS, MIMIR_HOME: path.join(dir, 'home'), MIMIR_TORCHRUN: file };

    const doctor = runMimir(['doctor', '--json'], env);
    expect(doctor.status, doctor.stderr).toBe(0);
    const engine = SystemReport.parse(JSON.parse(doctor.stdout)).torchEngine;
    expect(engine?.launcher).toBe('torchrun');
    expect(engine?.launcherReason).toMatch(/works: a one-rank probe started with RANK 0 of WORLD_SIZE 1/);

    const out = path.join(dir, 'run');
    const run = runMimir(['pretrain', '--engine', 'torch', '--nproc', '2', ...MICRO, '--out', out, '--json'], env);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/ranks started by torchrun/);
    const printed = events(run.stdout);
    expect(printed.filter((e) => e.type === 'started')).toHaveLength(1);
    expect(printed.filter((e) => e.type === 'done')).toHaveLength(1);
    const started = printed.find((e) => e.type === 'started');
    expect(started?.type === 'started' && started.engine?.worldSize).toBe(2);
    const steps = printed.flatMap((e) => (e.type === 'progress' ? [e.step] : []));
    expect(steps).toEqual([1, 2, 3, 4]);

    // The doctor's probe, then the run (the run found the probe's result in the cache).
    const made = readFileSync(calls, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { argv: string[]; module: string });
    expect(made.map((c) => c.module)).toEqual(['mimir_torch.rank_probe', 'mimir_torch.run']);
    const argv = made[1]?.argv ?? [];
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    expect([flag('--nproc_per_node'), flag('--nnodes'), flag('--node_rank'), flag('--master_addr')]).toEqual([
      '2',
      '1',
      '0',
      '127.0.0.1',
    ]);
    expect(flag('--out')).toBe(out);
  }, 300_000);

  it(`this machine's torchrun (torch ${python.torch}): the launcher starts the ranks itself when the probe fails, and the run trains to done`, () => {
    const dir = tmp();
    const env = { ...THREADS, MIMIR_HOME: path.join(dir, 'home') };
    const doctor = runMimir(['doctor', '--json'], env);
    expect(doctor.status, doctor.stderr).toBe(0);
    const engine = SystemReport.parse(JSON.parse(doctor.stdout)).torchEngine;
    const broken = python.torch.startsWith('1.13') && /^3\.1[1-9]/.test(engine?.pythonVersion ?? '');
    if (broken) {
      // gpu-notes.md: torch 1.13's elastic multiprocessing breaks on Python 3.11's enums.
      expect(engine?.launcher).toBe('own');
      expect(engine?.launcherReason).toMatch(
        /torch\.distributed\.run cannot start here: its one-rank probe failed \(.*AttributeError.*\); the launcher starts the ranks itself/,
      );
    }
    const run = runMimir(
      ['pretrain', '--engine', 'torch', '--nproc', '2', ...MICRO, '--out', path.join(dir, 'run'), '--json'],
      env,
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      broken ? /ranks started by the launcher: / : /ranks started by (torchrun|the launcher): /,
    );
    const printed = events(run.stdout);
    expect(printed.filter((e) => e.type === 'done')).toHaveLength(1);
    expect(printed.flatMap((e) => (e.type === 'progress' ? [e.step] : []))).toEqual([1, 2, 3, 4]);
  }, 300_000);
});
