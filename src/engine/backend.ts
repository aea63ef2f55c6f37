import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import {
  BACKEND_ENV,
  type BackendCandidate,
  type ForcedBackend,
  type GpuReport,
  type SystemReport,
} from '@shared/system';
import { probeGpu } from './gpu';
import { probeWebgpuCandidate } from './webgpu/adapter';
import { activeWasmThreads, registerThreadedWasm } from './wasm-threads';
import { errorMessage } from '@shared/unknown-value';

const requireModule = createRequire(import.meta.url);

export class BackendUnavailableError extends Error {
  constructor(
    message: string,
    readonly candidates: BackendCandidate[],
  ) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

function firstLine(error: unknown): string {
  const text = errorMessage(error);
  return text.split('\n')[0]?.trim() ?? text;
}

function isInstalled(moduleName: string): boolean {
  try {
    requireModule.resolve(moduleName);
    return true;
  } catch {
    return false;
  }
}

/** Probe the libtensorflow backends; loads at most one of them (both register the native "tensorflow" backend). */
function probeTensorflow(gpu: GpuReport): BackendCandidate[] {
  const gpuModule = '@tensorflow/tfjs-node-gpu';
  const cpuModule = '@tensorflow/tfjs-node';
  const candidates: BackendCandidate[] = [];
  let loaded = false;

  const missingCuda = gpu.cudaLibraries.filter((lib) => lib.path === null).map((lib) => lib.name);
  if (!isInstalled(gpuModule)) {
    candidates.push({
      backend: 'tensorflow',
      module: gpuModule,
      available: false,
      reason: 'not installed (optional dependency; its installer downloads libtensorflow, which failed or was skipped)',
    });
  } else if (gpu.devices.length === 0) {
    candidates.push({ backend: 'tensorflow', module: gpuModule, available: false, reason: gpu.summary });
  } else if (missingCuda.length > 0) {
    candidates.push({
      backend: 'tensorflow',
      module: gpuModule,
      available: false,
      reason: `no CUDA libraries found: ${missingCuda.join(', ')} (needs CUDA 11.2 and cuDNN 8.1 on the loader path)`,
    });
  } else {
    candidates.push(loadNative(gpuModule, `CUDA on ${gpu.devices.map((d) => d.name).join(', ')}`));
    loaded = candidates[0]?.available === true;
  }

  if (loaded) {
    candidates.push({
      backend: 'tensorflow',
      module: cpuModule,
      available: false,
      reason: `not needed: ${gpuModule} loaded`,
    });
  } else if (!isInstalled(cpuModule)) {
    candidates.push({
      backend: 'tensorflow',
      module: cpuModule,
      available: false,
      reason:
        'not installed (optional; `npm install @tensorflow/tfjs-node` gives the fast CPU path where it can download)',
    });
  } else {
    candidates.push(loadNative(cpuModule, 'libtensorflow on the CPU'));
  }
  return candidates;
}

function loadNative(moduleName: string, description: string): BackendCandidate {
  try {
    requireModule(moduleName);
  } catch (error) {
    return {
      backend: 'tensorflow',
      module: moduleName,
      available: false,
      reason: `failed to load: ${firstLine(error)}`,
    };
  }
  if (!tf.findBackend('tensorflow')) {
    return { backend: 'tensorflow', module: moduleName, available: false, reason: 'loaded but registered no backend' };
  }
  return { backend: 'tensorflow', module: moduleName, available: true, reason: description };
}

async function probeWasm(): Promise<BackendCandidate> {
  const moduleName = '@tensorflow/tfjs-backend-wasm';
  try {
    const dist = path.join(path.dirname(requireModule.resolve(`${moduleName}/package.json`)), 'dist') + path.sep;
    setWasmPaths(dist);
    // The multi-threaded build, for the engine's kernels on every core (see wasm-threads.ts).
    const threaded = await registerThreadedWasm();
    if (!(await tf.setBackend('wasm'))) {
      return { backend: 'wasm', module: moduleName, available: false, reason: 'failed to initialise' };
    }
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = activeWasmThreads() ?? 1;
    return {
      backend: 'wasm',
      module: moduleName,
      available: true,
      reason:
        `WebAssembly, SIMD ${simd ? 'on' : 'off'}, ` +
        (threads > 1 ? `${threads} threads` : `one thread (${threaded.reason})`),
    };
  } catch (error) {
    return { backend: 'wasm', module: moduleName, available: false, reason: `failed to load: ${firstLine(error)}` };
  }
}

async function probeCpu(): Promise<BackendCandidate> {
  const moduleName = '@tensorflow/tfjs-backend-cpu';
  try {
    if (!(await tf.setBackend('cpu')))
      return { backend: 'cpu', module: moduleName, available: false, reason: 'failed to initialise' };
    return {
      backend: 'cpu',
      module: moduleName,
      available: true,
      reason: 'plain JavaScript: the slowest, the reference for numerics',
    };
  } catch (error) {
    return { backend: 'cpu', module: moduleName, available: false, reason: `failed to load: ${firstLine(error)}` };
  }
}

/**
 * Probe every backend candidate, activate the fastest available one (or the forced one), and
 * describe what was found. A forced backend that is unavailable is an error, never a fallback.
 */
export async function selectBackend(
  forced: ForcedBackend | null,
  processKind: SystemReport['processKind'],
): Promise<SystemReport> {
  const gpu = probeGpu();
  const webgpu = await probeWebgpuCandidate(forced?.backend === 'webgpu');
  const candidates = [...probeTensorflow(gpu), webgpu.candidate, await probeWasm(), await probeCpu()];

  let choice: BackendCandidate | undefined;
  if (forced) {
    choice = candidates.find((c) => c.backend === forced.backend && c.available);
    if (!choice) {
      const why = candidates
        .filter((c) => c.backend === forced.backend)
        .map((c) => `${c.module}: ${c.reason}`)
        .join('; ');
      throw new BackendUnavailableError(
        `Backend "${forced.backend}" was forced by ${forced.forcedBy === 'flag' ? '--backend' : BACKEND_ENV} but is unavailable: ${why}`,
        candidates,
      );
    }
  } else {
    choice = candidates.find((c) => c.available);
    if (!choice) throw new BackendUnavailableError('No TensorFlow.js backend could be loaded.', candidates);
  }
  if (!(await tf.setBackend(choice.backend))) {
    throw new BackendUnavailableError(
      `Backend "${choice.backend}" initialised once but not a second time.`,
      candidates,
    );
  }
  await tf.ready();

  return {
    chosen: choice.backend,
    chosenModule: choice.module,
    forcedBy: forced?.forcedBy ?? null,
    candidates,
    tfjsVersion: tf.version_core,
    node: process.versions.node,
    electron: process.versions.electron ?? null,
    platform: process.platform,
    arch: process.arch,
    cpus: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    gpu,
    webgpu: webgpu.report,
    processKind,
    pid: process.pid,
  };
}
