import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { writeFileAtomic } from './io/atomic-file';
import { errorMessage } from '@shared/unknown-value';

/**
 * tfjs-backend-wasm's multi-threaded build under Node, for the shared memory it brings: the engine's
 * own kernels (src/engine/kernels) run their products, attention, GELU and LayerNorm on several
 * threads over it (kernels/runner.ts). tfjs's own XNNPACK pool is kept at one thread: on this
 * engine's graphs its threads mostly spin between the few small ops left to tfjs, taking CPU time
 * from the kernels' threads.
 *
 * tfjs 4.22 never picks this build under Node itself: its WASM_HAS_MULTITHREAD_SUPPORT flag is false
 * there, and its loader hands Emscripten the pthread worker as a blob: URL, which Node's
 * worker_threads cannot start. The Emscripten glue itself supports Node (worker_threads), so this
 * loads it with the worker written to a temporary file and registers the result as the "wasm"
 * backend (same kernels, same numbers).
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

/**
 * The pthread worker script as a file (Node's worker_threads needs one), named by its content's hash
 * in the temporary folder and shared by every process: written once, never removed, so a killed
 * process leaves nothing behind.
 */
async function writeWorker(contents: string): Promise<string> {
  // The contents sit in a JS template string; tfjs escapes its newlines the same way for its blob.
  const script = contents.replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `mimir-tfjs-wasm-worker-${hash}.cjs`);
  if (!existsSync(file)) await writeFileAtomic(file, script);
  return file;
}

/**
 * Threads for the engine's kernels: $MIMIR_WASM_THREADS (1 keeps the single-threaded build), else
 * one per core, at most 8. The kernels' threads take work from a shared counter, so on a machine
 * busy with other work they slow each other down little: a thread that gets no CPU time leaves
 * its share to the others.
 */
export function wantedWasmThreads(): number {
  const fromEnv = Number(process.env.MIMIR_WASM_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return Math.min(MAX_THREADS, fromEnv);
  return Math.min(MAX_THREADS, os.availableParallelism());
}

/** Threads of the engine's kernels on the registered multi-threaded build (0: not registered). */
let kernelThreads = 0;

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
  if (threads < 2) {
    return { ok: false, reason: process.env.MIMIR_WASM_THREADS ? 'MIMIR_WASM_THREADS asks for one' : 'one CPU core' };
  }
  const running = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  if (running.wasm) return { ok: false, reason: 'the wasm backend was already running' };
  if (typeof SharedArrayBuffer === 'undefined') return { ok: false, reason: 'no SharedArrayBuffer' };
  const registry = (tf.engine() as unknown as { registryFactory: Record<string, unknown> }).registryFactory;
  const stock = registry.wasm as { factory: () => Promise<tf.KernelBackend>; priority: number } | undefined;
  const pkg = path.dirname(requireModule.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const factoryFile = path.join(pkg, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const binary = path.join(pkg, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm');
  let module: WasmModule;
  try {
    const factory = requireModule(factoryFile) as EmscriptenFactory;
    const { wasmWorkerContents } = requireModule(
      path.join(pkg, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js'),
    ) as {
      wasmWorkerContents: string;
    };
    const workerFile = await writeWorker(wasmWorkerContents);
    module = await factory({
      locateFile: (file: string, prefix: string) =>
        file.endsWith('.worker.js') ? workerFile : file.endsWith('.wasm') ? binary : prefix + file,
      // Each pthread worker evaluates this script to get the module factory.
      mainScriptUrlOrBlob: factoryFile,
    });
  } catch (error) {
    return {
      ok: false,
      reason: `the threaded module did not start: ${errorMessage(error)}`,
    };
  }
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(1);
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
  if (registered) kernelThreads = threads;
  return registered ? { ok: true, reason: `${threads} threads` } : { ok: false, reason: 'could not register' };
}

/**
 * Threads the engine's kernels run on in the active wasm backend: the count registered with the
 * multi-threaded build, 1 for the stock build, null off wasm.
 */
export function activeWasmThreads(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  return kernelThreads > 0 ? kernelThreads : 1;
}
