import { spawnSync } from 'node:child_process';

export interface PythonWithTorch {
  executable: string;
  /** "safetensors" when the safetensors package is importable, "torch+spec" when only PyTorch is. */
  implementation: string;
  torch: string;
}

let cached: { python: PythonWithTorch | null; reason: string } | null = null;

/**
 * A python3 that can import torch: $MIMIR_PYTHON, then Debian's /usr/bin/python3 (where
 * `apt-get install python3-torch` puts PyTorch), then python3 on PATH. `reason` says why none was found.
 */
export function findPythonWithTorch(probeScript: string): { python: PythonWithTorch | null; reason: string } {
  if (cached) return cached;
  const candidates = [process.env.MIMIR_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => Boolean(c));
  const failures: string[] = [];
  for (const executable of candidates) {
    const run = spawnSync(executable, [probeScript, 'probe'], { encoding: 'utf8', timeout: 60_000 });
    if (run.status === 0) {
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
        implementation: string;
        torch: string;
      };
      cached = { python: { executable, implementation: report.implementation, torch: report.torch }, reason: '' };
      return cached;
    }
    const why = run.error ? run.error.message : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`);
    failures.push(`${executable}: ${why}`);
  }
  cached = { python: null, reason: `no python3 with PyTorch (apt-get install python3-torch): ${failures.join('; ')}` };
  return cached;
}

export function runPython(python: PythonWithTorch, args: string[]): { ok: boolean; [key: string]: unknown } {
  const run = spawnSync(python.executable, args, { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`python ${args.join(' ')} failed (exit ${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean };
}
