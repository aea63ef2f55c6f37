import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FinetuneConfig, resolveFinetuneConfig, type ResolvedFinetuneConfig } from '@shared/finetune-config';
import type { BenchSettings, BenchStepName } from './settings';

/**
 * The PyTorch side of the comparison: scripts/bench_torch.py in its --serve mode, a child process that
 * builds the same models and runs one step whenever asked, so the bench can alternate a tfjs step and
 * a torch step (the machine's load then weighs on both alike) and never runs the two at once.
 */

const PROBE = 'import torch; print(torch.__version__)';

export interface PythonWithTorch {
  executable: string;
  torch: string;
}

/**
 * A python3 that imports torch: $MIMIR_PYTHON, then Debian's /usr/bin/python3 (where python3-torch
 * installs), then python3 on PATH. `reason` says why none was found.
 */
export function findPythonWithTorch(): { python: PythonWithTorch | null; reason: string } {
  const candidates = [process.env.MIMIR_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => Boolean(c));
  const failures: string[] = [];
  for (const executable of candidates) {
    const run = spawnSync(executable, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
    if (run.status === 0) return { python: { executable, torch: run.stdout.trim() }, reason: '' };
    const why = run.error ? run.error.message : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`);
    failures.push(`${executable}: ${why}`);
  }
  return { python: null, reason: `no python3 with PyTorch (apt-get install python3-torch): ${failures.join('; ')}` };
}

/** scripts/bench_torch.py of this checkout, found upwards from this module (source tree or build output). */
export function findTorchScript(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'scripts', 'bench_torch.py');
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error('bench: scripts/bench_torch.py not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const TorchInfo = z.object({
  torch: z.string(),
  python: z.string(),
  threads: z.number(),
  interopThreads: z.number(),
  blas: z.object({
    libraries: z.array(z.string()),
    OPENBLAS_CORETYPE: z.string().nullable(),
    openblas: z.object({ threads: z.number(), core: z.string(), config: z.string() }).optional(),
    note: z.string().optional(),
  }),
});
export type TorchInfo = z.infer<typeof TorchInfo>;

const TorchStepReply = z.object({
  step: z.string(),
  wallMs: z.number(),
  cpuMs: z.number(),
  loss: z.number(),
  peakRssMiB: z.number(),
});
export type TorchStepReply = z.infer<typeof TorchStepReply>;

export class TorchSide {
  private readonly lines: AsyncIterator<string>;
  private stderrTail = '';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly info: TorchInfo,
    lines: AsyncIterator<string>,
  ) {
    this.lines = lines;
  }

  static async start(python: PythonWithTorch, settings: BenchSettings, script = findTorchScript()): Promise<TorchSide> {
    const request = { ...settings, finetune: pgdAtRecord(settings) };
    const child = spawn(python.executable, [script, '--serve', JSON.stringify(request)], { stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error(`bench: the PyTorch side exited before it was ready: ${stderr.trim()}`);
    const info = TorchInfo.parse(JSON.parse(first.value));
    const side = new TorchSide(child, info, lines);
    child.stderr.on('data', () => (side.stderrTail = stderr));
    return side;
  }

  async step(name: BenchStepName): Promise<TorchStepReply> {
    this.child.stdin.write(`${name}\n`);
    const reply = await this.lines.next();
    if (reply.done) throw new Error(`bench: the PyTorch side exited during a ${name} step: ${this.stderrTail.trim()}`);
    const parsed: unknown = JSON.parse(reply.value);
    if (typeof parsed === 'object' && parsed !== null && 'ok' in parsed && parsed.ok === false) {
      throw new Error(`bench: the PyTorch side failed: ${JSON.stringify(parsed)}`);
    }
    return TorchStepReply.parse(parsed);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end('quit\n');
    await exited;
  }
}

/**
 * The PGD-AT step's settings with every default filled, as a run's job file carries them (the PyTorch
 * side parses them; it never fills a default itself). The dataset and source only fill defaults here.
 */
function pgdAtRecord(s: BenchSettings): ResolvedFinetuneConfig {
  return resolveFinetuneConfig(
    FinetuneConfig.parse({
      method: 'pgd-at',
      source: { kind: 'scratch' },
      threat: { norm: 'linf', eps: s.pgdEps },
      attack: { steps: s.pgdSteps, alpha: s.pgdAlpha, randomStart: true },
      dropPath: 0,
      labelSmoothing: 0,
    }),
  );
}
