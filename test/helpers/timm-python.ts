import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * A Python with timm, for the parity tests: a virtual environment over the Python that has torch
 * (Debian's python3-torch 1.13: `--system-site-packages`, so torch, numpy, PyYAML and Debian's
 * python3-torchvision come from the system), with timm installed from PyPI (`pip install --no-deps`:
 * its other requirements, huggingface_hub and safetensors, are optional at import). timm 0.9.16 is the
 * last line that runs on torch 1.13. The environment is kept under the temporary folder (keyed by the
 * version) and reused once its install finished. Throws with the reason when any step fails: a parity
 * test never passes by skipping.
 */
export const TIMM_VERSION = '0.9.16';

export function timmPython(): string {
  const { python, reason } = findPythonWithTorch();
  if (!python) throw new Error(`timm parity needs a Python with torch: ${reason}`);
  const venv = path.join(os.tmpdir(), `mimir-timm-${TIMM_VERSION}-venv`);
  const executable = path.join(venv, 'bin', 'python');
  const ready = path.join(venv, 'mimir-ready');
  const run = (what: string, cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      const detail = r.error?.message ?? `${r.stderr}`.trim().split('\n').slice(-5).join('\n');
      throw new Error(`${what} failed (${cmd} ${args.join(' ')}): ${detail}`);
    }
  };
  if (!existsSync(ready)) {
    rmSync(venv, { recursive: true, force: true });
    run('creating the timm virtual environment', python.executable, ['-m', 'venv', '--system-site-packages', venv]);
    run(`installing timm ${TIMM_VERSION} from PyPI`, executable, [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-deps',
      `timm==${TIMM_VERSION}`,
    ]);
    writeFileSync(ready, `timm ${TIMM_VERSION}\n`);
  }
  run('importing timm (torchvision comes from Debian: apt-get install python3-torchvision)', executable, [
    '-c',
    'import timm, torchvision',
  ]);
  return executable;
}
