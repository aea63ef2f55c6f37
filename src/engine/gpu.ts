import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { GpuReport } from '@shared/system';

/** The shared libraries @tensorflow/tfjs-node-gpu 4.22 (libtensorflow 2.9) needs: CUDA 11.2 and cuDNN 8.1. */
export const REQUIRED_CUDA_LIBRARIES = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'] as const;

function readDriverVersion(): string | null {
  const file = '/proc/driver/nvidia/version';
  if (!existsSync(file)) return null;
  const match = /Kernel Module\s+([\d.]+)/.exec(readFileSync(file, 'utf8'));
  return match?.[1] ?? 'unknown version';
}

function queryNvidiaSmi(): { name: string; memoryMiB: number | null; driver: string }[] {
  try {
    const out = execFileSync(
      'nvidia-smi',
      ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'],
      { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    return out
      .trim()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [name = '', memory = '', driver = ''] = line.split(',').map((s) => s.trim());
        const memoryMiB = Number(memory);
        return { name, memoryMiB: Number.isFinite(memoryMiB) ? memoryMiB : null, driver };
      });
  } catch {
    return []; // no nvidia-smi, or no device it can talk to
  }
}

function ldconfigLibraries(): Map<string, string> {
  const found = new Map<string, string>();
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      const out = execFileSync(ldconfig, ['-p'], {
        encoding: 'utf8',
        timeout: 5000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      for (const line of out.split('\n')) {
        const match = /^\s*(\S+)\s.*=>\s*(\S+)/.exec(line);
        if (match?.[1] && match[2] && !found.has(match[1])) found.set(match[1], match[2]);
      }
      return found;
    } catch {
      continue;
    }
  }
  return found;
}

/** Where the dynamic loader would find `name`: LD_LIBRARY_PATH first, then the ldconfig cache. */
function locateLibraries(names: readonly string[]): { name: string; path: string | null }[] {
  const searchDirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== '');
  const cache = ldconfigLibraries();
  return names.map((name) => {
    for (const dir of searchDirs) {
      const candidate = path.join(dir, name);
      if (existsSync(candidate)) return { name, path: candidate };
    }
    return { name, path: cache.get(name) ?? null };
  });
}

function hasNvidiaDeviceNodes(): boolean {
  try {
    return readdirSync('/dev').some((entry) => /^nvidia\d+$/.test(entry));
  } catch {
    return false;
  }
}

export function probeGpu(): GpuReport {
  if (process.platform !== 'linux' && process.platform !== 'win32') {
    return { nvidiaDriver: null, devices: [], cudaLibraries: [], summary: `no CUDA support on ${process.platform}` };
  }
  const smi = queryNvidiaSmi();
  const nvidiaDriver = readDriverVersion() ?? smi[0]?.driver ?? null;
  const devices = smi.map(({ name, memoryMiB }) => ({ name, memoryMiB }));
  const cudaLibraries = process.platform === 'linux' ? locateLibraries(REQUIRED_CUDA_LIBRARIES) : [];
  const missing = cudaLibraries.filter((lib) => lib.path === null).map((lib) => lib.name);

  let summary: string;
  if (devices.length > 0) {
    const names = devices.map((d) => d.name).join(', ');
    summary =
      missing.length === 0
        ? `${devices.length} NVIDIA GPU(s): ${names}; CUDA 11 and cuDNN 8 libraries found`
        : `${devices.length} NVIDIA GPU(s): ${names}; missing for tfjs-node-gpu: ${missing.join(', ')}`;
  } else if (nvidiaDriver !== null || hasNvidiaDeviceNodes()) {
    summary = `NVIDIA driver ${nvidiaDriver ?? 'present'} but nvidia-smi lists no device`;
  } else {
    summary = 'no NVIDIA GPU found (no driver, no nvidia-smi devices)';
  }
  return { nvidiaDriver, devices, cudaLibraries, summary };
}
