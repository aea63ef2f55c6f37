import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

/**
 * tfjs-backend-wasm's multi-threaded build (XNNPACK on a pthread pool) under Node. tfjs 4.22 never
 * picks it there: its WASM_HAS_MULTITHREAD_SUPPORT flag is false under Node, and its loader hands
 * Emscripten the pthread worker as a blob: URL, which Node's worker_threads cannot start. The
 * Emscripten glue itself supports Node (worker_threads), so this loads it with the worker written to
 * a temporary file and registers the result as the "wasm" backend (same kernels, same numbers: the
 * threads split matrix products by output tiles, never along a sum).
 *
 * One more quirk: the C++ side sizes its pool as emscripten_num_logical_cores() / 2 (it assumes two
 * hyper-threads per core) and caps the requested count there, so on a 2-core VM it would get one
 * thread. Emscripten reads that core count from os.cpus() under Node, which is stretched to
 * 2 x threads while the module initialises.
 */

const requireModule = createRequire(import.meta.url);
/** The Emscripten build pre-creates this many workers; more threads are not possible. */
const MAX_THREADS = 8;

type EmscriptenFactory = (config: Record<string, unknown>) => Promise<WasmModule>;
interface WasmModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, unknown>;
  PThread?: { runningWorkers?: Array<{ unref?: () => void }> };
}

let workerDir: string | null = null;

function writeWorker(contents: string): string {
  if (!workerDir) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-wasm-'));
    workerDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const file = path.join(workerDir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
  // The contents sit in a JS template string; tfjs escapes its newlines the same way for its blob.
  writeFileSync(file, contents.replace(/\n/g, '\\n'));
  return file;
}

/**
 * The thread count asked for: $MIMIR_WASM_THREADS (at most 8), else 1. Opt-in because the pool wakes
 * its threads for every kernel: on this engine's graphs (tens of thousands of small attention
 * kernels per step) that costs more than the matrix products gain on a machine whose cores are
 * busy with other work, and gains (about 1.2x on the MIMIR step) only on an idle one.
 */
export function wantedWasmThreads(): number {
  const fromEnv = Number(process.env.MIMIR_WASM_THREADS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? Math.min(MAX_THREADS, fromEnv) : 1;
}

let attempt: Promise<{ ok: boolean; reason: string }> | null = null;

/**
 * Register the multi-threaded wasm backend with `threads` threads in place of the stock "wasm"
 * registration, once per process and only before the wasm backend was first initialised. Returns
 * ok false, leaving the stock single-threaded registration in place, when one thread is asked for,
 * the wasm backend already runs, or the threaded module cannot start.
 */
export function registerThreadedWasm(threads = wantedWasmThreads()): Promise<{ ok: boolean; reason: string }> {
  attempt ??= register(threads);
  return attempt;
}

async function register(threads: number): Promise<{ ok: boolean; reason: string }> {
  if (threads < 2) return { ok: false, reason: 'one thread requested' };
  const running = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  if (running.wasm) return { ok: false, reason: 'the wasm backend was already running' };
  if (typeof SharedArrayBuffer === 'undefined') return { ok: false, reason: 'no SharedArrayBuffer' };
  const registry = (tf.engine() as unknown as { registryFactory: Record<string, unknown> }).registryFactory;
  const stock = registry.wasm as { factory: () => Promise<tf.KernelBackend>; priority: number } | undefined;
  const pkg = path.dirname(requireModule.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const factoryFile = path.join(pkg, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const binary = path.join(pkg, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm');
  let module: WasmModule;
  const realCpus = os.cpus;
  try {
    const factory = requireModule(factoryFile) as EmscriptenFactory;
    const { wasmWorkerContents } = requireModule(
      path.join(pkg, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js'),
    ) as {
      wasmWorkerContents: string;
    };
    const workerFile = writeWorker(wasmWorkerContents);
    const cpu = realCpus()[0];
    if (cpu) os.cpus = () => Array.from({ length: 2 * threads }, () => cpu);
    module = await factory({
      locateFile: (file: string, prefix: string) =>
        file.endsWith('.worker.js') ? workerFile : file.endsWith('.wasm') ? binary : prefix + file,
      // Each pthread worker evaluates this script to get the module factory.
      mainScriptUrlOrBlob: factoryFile,
    });
  } catch (error) {
    return {
      ok: false,
      reason: `the threaded module did not start: ${error instanceof Error ? error.message : String(error)}`,
    };
  } finally {
    os.cpus = realCpus;
  }
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(threads);
  tf.removeBackend('wasm');
  const registered = tf.registerBackend(
    'wasm',
    () => {
      const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
      // The pool's threads (started just now) must not keep the process alive after its work is done.
      for (const worker of module.PThread?.runningWorkers ?? []) worker.unref?.();
      return backend;
    },
    stock?.priority ?? 2,
  );
  if (!registered && stock) tf.registerBackend('wasm', stock.factory, stock.priority);
  return registered ? { ok: true, reason: `${threads} threads` } : { ok: false, reason: 'could not register' };
}

/** Threads of the active wasm backend's XNNPACK pool (1 for the stock build), or null off wasm. */
export function activeWasmThreads(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  try {
    return getThreadsCount();
  } catch {
    return null;
  }
}
