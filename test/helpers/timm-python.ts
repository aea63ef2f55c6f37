import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './build';

/**
 * A python with timm for parity tests against timm's models: a venv over Debian's python3 (its
 * python3-torch 1.13 and python3-torchvision 0.14 through --system-site-packages) with timm from PyPI
 * installed --no-deps (its other needs are optional or already there). Made once under
 * .cache/timm-python (ignored by git) and reused. Never skips: any failure throws with the reason and
 * what to install.
 */

export const TIMM_VERSION = '0.9.16';
export const TIMM_VENV = path.join(ROOT, '.cache', 'timm-python');
const BASE_PYTHON = '/usr/bin/python3';
const PROBE = `import timm, torch, torchvision; assert timm.__version__ == ${JSON.stringify(TIMM_VERSION)}, timm.__version__; print(timm.__version__)`;

function run(executable: string, args: string[], timeoutMs: number): { ok: boolean; output: string } {
  const result = spawnSync(executable, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 });
  const output =
    `${result.error ? `${result.error.message}\n` : ''}${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  return { ok: result.status === 0, output };
}

function lastLines(text: string, n = 6): string {
  return text.split('\n').slice(-n).join('\n');
}

function probe(python: string): { ok: boolean; output: string } {
  if (!existsSync(python)) return { ok: false, output: `${python} does not exist` };
  return run(python, ['-c', PROBE], 120_000);
}

let cached: string | null = null;

/** The venv's python (creating the venv on first use); throws with the reason when it cannot. */
export function timmPython(): string {
  if (cached) return cached;
  const python = path.join(TIMM_VENV, 'bin', 'python');
  if (probe(python).ok) return (cached = python);

  const base = run(BASE_PYTHON, ['-c', 'import torch, torchvision'], 120_000);
  if (!base.ok) {
    throw new Error(
      `timm needs Debian's ${BASE_PYTHON} with torch and torchvision ` +
        `(apt-get install python3-torch python3-torchvision): ${lastLines(base.output)}`,
    );
  }
  // Built beside the final folder and renamed into place, so concurrent test files never see half a venv
  // (a venv's python finds its site-packages relative to itself, so the move keeps it working).
  const staging = `${TIMM_VENV}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    const venv = run(BASE_PYTHON, ['-m', 'venv', '--system-site-packages', staging], 300_000);
    if (!venv.ok) throw new Error(`python3 -m venv failed (apt-get install python3-venv): ${lastLines(venv.output)}`);
    const pip = run(
      path.join(staging, 'bin', 'python'),
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', `timm==${TIMM_VERSION}`],
      600_000,
    );
    if (!pip.ok)
      throw new Error(`pip install timm==${TIMM_VERSION} failed (is PyPI reachable?): ${lastLines(pip.output)}`);
    const check = probe(path.join(staging, 'bin', 'python'));
    if (!check.ok) throw new Error(`timm ${TIMM_VERSION} installed but does not import: ${lastLines(check.output)}`);
    if (!probe(python).ok) {
      rmSync(TIMM_VENV, { recursive: true, force: true });
      try {
        renameSync(staging, TIMM_VENV);
      } catch (error) {
        // Another test file won the race: use its venv if it works.
        if (!probe(python).ok) throw error;
      }
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const final = probe(python);
  if (!final.ok) throw new Error(`the timm venv at ${TIMM_VENV} does not work: ${lastLines(final.output)}`);
  return (cached = python);
}
