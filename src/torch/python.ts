import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { torchCapabilities, type TorchEngineReport } from '@shared/system';

/**
 * Finding the PyTorch engine: a python3 that imports torch ($MIMIR_PYTHON, then Debian's
 * /usr/bin/python3, then python3 on PATH), what it offers (torch version, CUDA devices, NCCL), and
 * the repository's python/ folder that holds mimir_torch. When none works, `reason` says why and how
 * to install it.
 */

export const PYTHON_ENV = 'MIMIR_PYTHON';

const PROBE = `
import json, sys
try:
    import torch
except Exception as error:
    print(json.dumps({"torch": None, "python": sys.version.split()[0], "error": f"{type(error).__name__}: {error}"}))
    sys.exit(0)
try:
    import numpy
    has_numpy = True
except Exception:
    has_numpy = False
cuda = torch.cuda.is_available()
devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
dist = torch.distributed.is_available()
print(json.dumps({
    "torch": torch.__version__, "python": sys.version.split()[0], "numpy": has_numpy,
    "cuda": cuda, "cudaVersion": torch.version.cuda, "devices": devices,
    "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
    "gloo": bool(dist and torch.distributed.is_gloo_available()),
    "nccl": bool(dist and torch.distributed.is_nccl_available()),
}))
`;

export const TorchProbe = z.object({
  torch: z.string(),
  python: z.string(),
  numpy: z.boolean(),
  ...torchCapabilities,
});
export type TorchProbe = z.infer<typeof TorchProbe>;

export interface TorchPython extends TorchProbe {
  executable: string;
}

export interface TorchDiscovery {
  python: TorchPython | null;
  /** Why no candidate works, with the install hint; '' when one does. */
  reason: string;
  /** Every candidate tried and what it said. */
  tried: { executable: string; result: string }[];
}

const INSTALL_HINT =
  'install PyTorch (Debian: apt-get install python3-torch python3-numpy; elsewhere: pip install torch numpy), ' +
  `or point ${PYTHON_ENV} at a python3 that has it`;

let cached: TorchDiscovery | null = null;

/** Probe the candidates once per process (the first that imports torch with numpy wins). */
export function discoverTorch(env: NodeJS.ProcessEnv = process.env): TorchDiscovery {
  if (cached && env === process.env) return cached;
  const explicit = env[PYTHON_ENV];
  const candidates = explicit ? [explicit] : ['/usr/bin/python3', 'python3'];
  const tried: TorchDiscovery['tried'] = [];
  for (const executable of candidates) {
    const run = spawnSync(executable, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
    if (run.error || run.status !== 0) {
      const why = run.error ? run.error.message : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`);
      tried.push({ executable, result: why });
      continue;
    }
    const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { torch: string | null; error?: string };
    if (report.torch === null) {
      tried.push({ executable, result: `${executable} has no torch (${report.error ?? 'import failed'})` });
      continue;
    }
    const parsed = TorchProbe.safeParse(report);
    if (!parsed.success) {
      tried.push({ executable, result: `unexpected probe output: ${run.stdout.trim()}` });
      continue;
    }
    if (!parsed.data.numpy) {
      tried.push({ executable, result: `${executable} has torch ${parsed.data.torch} but no numpy` });
      continue;
    }
    const found: TorchDiscovery = { python: { executable, ...parsed.data }, reason: '', tried };
    if (env === process.env) cached = found;
    return found;
  }
  const found: TorchDiscovery = {
    python: null,
    reason: `The PyTorch engine is unavailable: ${tried.map((t) => t.result).join('; ')}. To use it, ${INSTALL_HINT}.`,
    tried,
  };
  if (env === process.env) cached = found;
  return found;
}

/** The repository's python/ folder (it holds mimir_torch), found upwards from this module (source tree or out/). */
export function pythonPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'python');
    if (existsSync(path.join(candidate, 'mimir_torch', '__init__.py'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`the PyTorch engine's python/mimir_torch was not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The discovery as the system report carries it, with the launcher the ranks would get (probing torchrun once). */
export async function torchEngineReport(found: TorchDiscovery = discoverTorch()): Promise<TorchEngineReport> {
  const p = found.python;
  const { chooseLauncher } = await import('./torchrun');
  const { freePort } = await import('./launch');
  const launcher = p ? await chooseLauncher(p, pythonPackageRoot(), freePort) : null;
  return {
    available: p !== null,
    python: p?.executable ?? null,
    pythonVersion: p?.python ?? null,
    torch: p?.torch ?? null,
    cuda: p?.cuda ?? false,
    cudaVersion: p?.cudaVersion ?? null,
    devices: p?.devices ?? [],
    bf16: p?.bf16 ?? false,
    nccl: p?.nccl ?? false,
    gloo: p?.gloo ?? false,
    reason: found.reason,
    launcher: launcher?.kind ?? null,
    launcherReason: launcher?.reason ?? '',
  };
}
