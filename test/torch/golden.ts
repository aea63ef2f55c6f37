import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDtype } from '../../src/engine/io/safetensors';
import type { ModelConfig } from '../../src/shared/model-config';
import { runPython, type PythonWithTorch } from '../engine/io/python-torch';

/**
 * The Node half of the golden-step tests: write one case (weights, batch, mask, attack start and the
 * run config) for `python3 -m mimir_torch.golden`, run every case in one Python process, read back
 * its scalars and gradients, and compare them with the tfjs engine's.
 */

export const PYTHON_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../python');

type Entry = { dtype: SafetensorsDtype; shape: readonly number[]; values: ArrayLike<number> };

/** One AdamW update after the step (case.json's "optimizer"). */
export interface GoldenOptimizer {
  lr: number;
  betas: [number, number];
  weightDecay: number;
  maxGradNorm: number | null;
  layerDecay: number | null;
  /** Pre-training: the cls and mask tokens are decayed too (MAE's optimiser); fine-tuning: they are not (timm's). */
  decayTokens: boolean;
}

export interface GoldenCase {
  dir: string;
  kind: 'pretrain' | 'finetune';
  model: ModelConfig;
  run: unknown;
  optimizer: GoldenOptimizer;
  /** Fine-tuning: the step's Rng seed, the batch's dataset ids and the 0-based epoch (DBAT's targets depend on it). */
  rng?: { seed: number; ids: number[]; epoch?: number };
  /** Generalist: where in the run the step falls (the robust weight and sync depend on it). */
  generalist?: { epoch: number; batchIndex: number; stepsPerEpoch: number };
  inputs: Map<string, Entry>;
}

export async function entry(t: tf.Tensor): Promise<Entry> {
  const values = await t.data();
  return { dtype: t.dtype === 'int32' ? 'I32' : 'F32', shape: t.shape, values: values as ArrayLike<number> };
}

export async function paramEntries(params: Map<string, tf.Tensor>): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  for (const [name, value] of params) out.set(`param.${name}`, await entry(value));
  return out;
}

export async function writeCase(c: GoldenCase): Promise<void> {
  await mkdir(c.dir, { recursive: true });
  await writeFile(
    path.join(c.dir, 'case.json'),
    JSON.stringify({
      kind: c.kind,
      model: c.model,
      run: c.run,
      optimizer: c.optimizer,
      rng: c.rng,
      generalist: c.generalist,
    }),
  );
  await writeFile(path.join(c.dir, 'inputs.safetensors'), encodeSafetensors(c.inputs));
}

export interface TorchOutputs {
  scalars: Record<string, number>;
  tensors: Map<string, Float32Array>;
}

/** Run the PyTorch engine's golden step on every case directory (one process), in order. */
export async function runTorchCases(python: PythonWithTorch, dirs: string[]): Promise<TorchOutputs[]> {
  const env = { ...process.env, PYTHONPATH: PYTHON_DIR };
  const result = runPython<{ results: Array<Record<string, number>> }>(python, ['-m', 'mimir_torch.golden', ...dirs], {
    env,
    // Under a loaded machine: torch's import and a dozen micro steps.
    timeoutMs: 600_000,
  });
  const outputs: TorchOutputs[] = [];
  for (const [i, dir] of dirs.entries()) {
    const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'outputs.safetensors'))));
    const tensors = new Map<string, Float32Array>();
    for (const [name, record] of file.tensors) tensors.set(name, Float32Array.from(record.data));
    const scalars = result.results[i];
    if (!scalars) throw new Error(`no result for ${dir}`);
    outputs.push({ scalars, tensors });
  }
  return outputs;
}

/** |a - b| / |b| for scalars (|b| floored at 1e-12). */
export function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

/** ||a - b|| / ||b|| in float64 (||b|| floored at 1e-30). */
export function relativeNorm(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    const d = (a[i] as number) - (b[i] as number);
    diff += d * d;
    norm += (b[i] as number) * (b[i] as number);
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

/**
 * The worst per-tensor relative-norm difference between the tfjs engine's tensors and the PyTorch
 * engine's `${prefix}<name>` outputs (minus `base`, when given: parameter updates), and which tensor.
 */
export function worstTensor(
  torchOutputs: Map<string, Float32Array>,
  tfjs: Map<string, Float32Array>,
  prefix: 'grad.' | 'param.',
  base?: Map<string, Float32Array>,
): { name: string; error: number } {
  let worst = { name: '', error: 0 };
  for (const [name, ours] of tfjs) {
    const theirs = torchOutputs.get(`${prefix}${name}`);
    if (!theirs) throw new Error(`the PyTorch engine gave no ${prefix}${name}`);
    const from = base?.get(name);
    const minus = (values: Float32Array) => (from ? values.map((v, i) => v - (from[i] ?? NaN)) : values);
    const error = relativeNorm(minus(theirs), minus(ours));
    if (!(error <= worst.error)) worst = { name, error };
  }
  const extra = [...torchOutputs.keys()].filter((k) => k.startsWith(prefix) && !tfjs.has(k.slice(prefix.length)));
  if (extra.length > 0) throw new Error(`the PyTorch engine gave ${prefix} for unknown parameters ${extra.join(', ')}`);
  return worst;
}
