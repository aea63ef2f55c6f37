import { spawnSync } from 'node:child_process';

export interface PythonWithTorch {
  executable: string;
  torch: string;
  /** Whether the safetensors package is importable (else the interop script reads/writes the format by hand). */
  safetensors: boolean;
}

const PROBE =
  'import json, importlib.util, torch; ' +
  'print(json.dumps({"torch": torch.__version__, "safetensors": importlib.util.find_spec("safetensors") is not None}))';

let cached: { python: PythonWithTorch | null; reason: string } | null = null;

/**
 * A python3 that can import torch: $MIMIR_PYTHON, then Debian's /usr/bin/python3 (where
 * `apt-get install python3-torch` puts PyTorch), then python3 on PATH. `reason` says why none was found.
 */
export function findPythonWithTorch(): { python: PythonWithTorch | null; reason: string } {
  if (cached) return cached;
  const candidates = [process.env.MIMIR_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => Boolean(c));
  const failures: string[] = [];
  for (const executable of candidates) {
    const run = spawnSync(executable, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
    if (run.status === 0) {
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { torch: string; safetensors: boolean };
      cached = { python: { executable, torch: report.torch, safetensors: report.safetensors }, reason: '' };
      return cached;
    }
    const why = run.error ? run.error.message : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`);
    failures.push(`${executable}: ${why}`);
  }
  cached = { python: null, reason: `no python3 with PyTorch (apt-get install python3-torch): ${failures.join('; ')}` };
  return cached;
}

/** Run a Python script and parse the JSON object on the last line of its output. */
export function runPython<T = { ok: boolean; [key: string]: unknown }>(
  python: PythonWithTorch,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): T {
  const run = spawnSync(python.executable, args, {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 64 * 2 ** 20,
    env: options.env ?? process.env,
  });
  if (run.status !== 0) throw new Error(`python ${args.join(' ')} failed (exit ${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as T;
}
