import * as tf from '@tensorflow/tfjs-core';
import type { BenchStep } from './steps';

/** One timed step: wall time, this process's CPU time (all its threads), the loss it reached. */
export interface StepTiming {
  wallMs: number;
  cpuMs: number;
  loss: number;
}

export async function timeStep(step: BenchStep): Promise<StepTiming> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const loss = await step.run();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  if (!Number.isFinite(loss)) throw new Error(`bench: the ${step.name} step's loss is ${loss}`);
  return { wallMs, cpuMs: (used.user + used.system) / 1000, loss };
}

/** Time aggregated per kernel name over one profiled step. */
export interface KernelProfileRow {
  kernel: string;
  calls: number;
  totalMs: number;
}

export interface StepProfile {
  /** Wall time of the profiled step (profiling itself adds a little). */
  wallMs: number;
  /** Sum of the kernels' own times; wallMs minus this is time spent outside kernels (JS, uploads, reads). */
  kernelMs: number;
  /** The highest number of bytes tfjs held in tensors during the step. */
  peakTensorBytes: number;
  /** Tensors the step left behind (0 when memory is flat). */
  newTensors: number;
  kernels: KernelProfileRow[];
}

/**
 * One step under tf.profile: the per-kernel time table and the step's peak tensor memory. Only
 * registered kernels count: tfjs also records each custom-gradient op as a "kernel" wrapped around
 * the kernels it runs, which would count their time twice.
 */
export async function profileStep(step: BenchStep): Promise<StepProfile> {
  const start = performance.now();
  const info = await tf.profile(async () => {
    await step.run();
  });
  const wallMs = performance.now() - start;
  const rows = new Map<string, KernelProfileRow>();
  let kernelMs = 0;
  const backend = tf.getBackend();
  for (const k of info.kernels) {
    if (!tf.getKernel(k.name, backend)) continue;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    kernelMs += ms;
    const shapes = k.inputShapes.map((s) => `[${s}]`);
    const key = `${k.name} ${shapes.length > 4 ? `${shapes[0]} x${shapes.length}` : shapes.join('')}`;
    const row = rows.get(key) ?? { kernel: key, calls: 0, totalMs: 0 };
    row.calls += 1;
    row.totalMs += ms;
    rows.set(key, row);
  }
  return {
    wallMs,
    kernelMs,
    peakTensorBytes: info.peakBytes,
    newTensors: info.newTensors,
    kernels: [...rows.values()].sort((a, b) => b.totalMs - a.totalMs),
  };
}

/** Group a profile's rows by kernel name alone (the rows are per name and input shapes). */
export function kernelTotals(rows: KernelProfileRow[]): KernelProfileRow[] {
  const byName = new Map<string, KernelProfileRow>();
  for (const row of rows) {
    const name = row.kernel.split(' ')[0] ?? row.kernel;
    const total = byName.get(name) ?? { kernel: name, calls: 0, totalMs: 0 };
    total.calls += row.calls;
    total.totalMs += row.totalMs;
    byName.set(name, total);
  }
  return [...byName.values()].sort((a, b) => b.totalMs - a.totalMs);
}

/** Memory as the process sees it: peak resident set, and the wasm heap when that backend is active. */
export function processMemory(): { peakRssMiB: number; wasmHeapMiB: number | null } {
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  let wasmHeapMiB: number | null = null;
  if (tf.getBackend() === 'wasm') {
    const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
    const heap = backend.wasm?.HEAPU8;
    if (heap) wasmHeapMiB = heap.buffer.byteLength / 2 ** 20;
  }
  return { peakRssMiB, wasmHeapMiB };
}
