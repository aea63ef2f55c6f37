import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BenchSettings } from '../settings';
import type { FloatMap, GradsReply, HalfRunner, PgdHalfInput, PretrainHalfInput } from './half';

/** Where a slice of the batch runs: this thread, or a worker thread with its own single-threaded tfjs. */
export interface Side {
  setParams(values: FloatMap): Promise<void>;
  pretrainAttack(input: PretrainHalfInput): Promise<{ adversarial: Float32Array; latent: Float32Array }>;
  pretrainTrain(miGrad: Float32Array, weight: number): Promise<GradsReply>;
  pgdat(input: PgdHalfInput): Promise<GradsReply>;
  close(): Promise<void>;
}

export class LocalSide implements Side {
  constructor(private readonly runner: HalfRunner) {}
  setParams(values: FloatMap): Promise<void> {
    this.runner.setParams(values);
    return Promise.resolve();
  }
  pretrainAttack(input: PretrainHalfInput) {
    return Promise.resolve(this.runner.pretrainAttack(input));
  }
  pretrainTrain(miGrad: Float32Array, weight: number) {
    return Promise.resolve(this.runner.pretrainTrain(miGrad, weight));
  }
  pgdat(input: PgdHalfInput) {
    return Promise.resolve(this.runner.pgdat(input));
  }
  close(): Promise<void> {
    this.runner.release();
    return Promise.resolve();
  }
}

export type WorkerRequest =
  | { id: number; kind: 'setParams'; values: FloatMap }
  | { id: number; kind: 'pretrainAttack'; input: PretrainHalfInput }
  | { id: number; kind: 'pretrainTrain'; miGrad: Float32Array; weight: number }
  | { id: number; kind: 'pgdat'; input: PgdHalfInput };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

export interface WorkerData {
  settings: BenchSettings;
  model: 'mae' | 'classifier';
}

/** The bundled worker script (out/main/bench-worker.js), next to this module's chunk or one folder up. */
export function findWorkerScript(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const candidate of [path.join(here, 'bench-worker.js'), path.join(here, '..', 'bench-worker.js')]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

export class WorkerSide implements Side {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: WorkerReply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new Error(`bench worker: ${reply.error}`));
    });
    worker.on('error', (error) => {
      for (const w of this.waiting.values()) w.reject(error);
      this.waiting.clear();
    });
  }

  static async start(script: string, data: WorkerData): Promise<WorkerSide> {
    const worker = new Worker(script, { workerData: data });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: unknown) =>
        m === 'ready' ? resolve() : reject(new Error(`bench worker: ${JSON.stringify(m)}`)),
      );
      worker.once('error', reject);
    });
    return new WorkerSide(worker);
  }

  private call<T>(request: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: (v) => resolve(v as T), reject });
      this.worker.postMessage({ ...request, id }, transfer);
    });
  }

  setParams(values: FloatMap): Promise<void> {
    return this.call({ kind: 'setParams', values });
  }
  pretrainAttack(input: PretrainHalfInput) {
    return this.call<{ adversarial: Float32Array; latent: Float32Array }>({ kind: 'pretrainAttack', input });
  }
  pretrainTrain(miGrad: Float32Array, weight: number) {
    return this.call<GradsReply>({ kind: 'pretrainTrain', miGrad, weight });
  }
  pgdat(input: PgdHalfInput) {
    return this.call<GradsReply>({ kind: 'pgdat', input });
  }
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
