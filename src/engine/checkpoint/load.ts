/**
 * Loading a checkpoint: verify every checksum, check the tensors against the model that will
 * receive them (names and shapes, with a plain statement of a depth mismatch), and hand back the
 * weights, the optimiser state and the manifest (which carries the RNG and data-iterator state).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  CHECKPOINT_MODEL_FILE,
  CHECKPOINT_OPTIMIZER_FILE,
  OPTIMIZER_M_PREFIX,
  OPTIMIZER_V_PREFIX,
  type CheckpointKind,
  type CheckpointManifest,
} from '@shared/checkpoint';
import type { SafetensorsFile } from '../io/safetensors';
import type { AdamW, AdamWStateValues } from '../train/optimizer';
import { CheckpointError, readCheckpoint } from './checkpoint-files';

export interface LoadOptions {
  /** The receiving model's parameter shapes; the checkpoint must hold exactly these names and shapes. */
  expectedShapes?: Map<string, readonly number[]>;
  /** Refuse a checkpoint of the other kind (a pre-training checkpoint where a fine-tuning one is resumed). */
  kind?: CheckpointKind;
}

export interface LoadedCheckpoint {
  path: string;
  manifest: CheckpointManifest;
  /** float32 values in the file's order. */
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: AdamWStateValues | null;
}

export function shapesOf(params: Map<string, { shape: number[] }>): Map<string, number[]> {
  return new Map([...params].map(([name, tensor]) => [name, tensor.shape]));
}

export async function loadCheckpoint(checkpoint: string, options: LoadOptions = {}): Promise<LoadedCheckpoint> {
  const contents = await readCheckpoint(checkpoint);
  const { manifest } = contents;
  if (options.kind && manifest.kind !== options.kind) {
    throw new CheckpointError(checkpoint, `is a ${manifest.kind} checkpoint, not a ${options.kind} one`);
  }
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, record] of contents.model.tensors) {
    if (record.dtype !== 'F32' && record.dtype !== 'F16' && record.dtype !== 'BF16' && record.dtype !== 'F64') {
      throw new CheckpointError(
        checkpoint,
        `${CHECKPOINT_MODEL_FILE}: "${name}" is ${record.dtype}, not a floating-point tensor`,
      );
    }
    weights.set(name, {
      shape: record.shape,
      data: record.data instanceof Float32Array ? record.data : Float32Array.from(record.data),
    });
  }
  if (options.expectedShapes) {
    const problems = compareShapes(CHECKPOINT_MODEL_FILE, shapesOf(weights), options.expectedShapes);
    if (problems.length > 0) throw new CheckpointError(checkpoint, problems.join('; '));
  }
  const optimizer = contents.optimizer
    ? readOptimizerState(checkpoint, contents.optimizer, manifest, shapesOf(weights))
    : null;
  return { path: checkpoint, manifest, weights, optimizer };
}

/**
 * Load a checkpoint into a model's variables and, when given, an optimiser; returns the manifest
 * (epoch, step, RNG and data-iterator state). Nothing is assigned unless everything checks out.
 */
export async function restoreCheckpoint(
  checkpoint: string,
  params: Map<string, tf.Variable>,
  optimizer: AdamW | null = null,
  options: Omit<LoadOptions, 'expectedShapes'> = {},
): Promise<CheckpointManifest> {
  const loaded = await loadCheckpoint(checkpoint, { ...options, expectedShapes: shapesOf(params) });
  if (optimizer && !loaded.optimizer) {
    throw new CheckpointError(checkpoint, `has no ${CHECKPOINT_OPTIMIZER_FILE}: it cannot resume an optimiser`);
  }
  if (optimizer && loaded.optimizer) optimizer.importState(loaded.optimizer);
  for (const [name, variable] of params) {
    const weight = loaded.weights.get(name);
    if (!weight) throw new CheckpointError(checkpoint, `internal: "${name}" vanished after the shape check`);
    const value = tf.tensor(weight.data, weight.shape, 'float32');
    variable.assign(value);
    value.dispose();
  }
  return loaded.manifest;
}

function readOptimizerState(
  checkpoint: string,
  file: SafetensorsFile,
  manifest: CheckpointManifest,
  paramShapes: Map<string, readonly number[]>,
): AdamWStateValues {
  const section = manifest.optimizer;
  if (!section) throw new CheckpointError(checkpoint, `has ${CHECKPOINT_OPTIMIZER_FILE} but no optimizer section`);
  const declared = file.metadata.step;
  if (declared !== undefined && Number(declared) !== section.step) {
    throw new CheckpointError(
      checkpoint,
      `${CHECKPOINT_OPTIMIZER_FILE} is at step ${declared}, the manifest says ${section.step}`,
    );
  }
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const stray: string[] = [];
  for (const [name, record] of file.tensors) {
    const target = name.startsWith(OPTIMIZER_V_PREFIX) ? v : name.startsWith(OPTIMIZER_M_PREFIX) ? m : null;
    if (!target || record.dtype !== 'F32') {
      stray.push(name);
      continue;
    }
    const param = name.slice(target === v ? OPTIMIZER_V_PREFIX.length : OPTIMIZER_M_PREFIX.length);
    target.set(param, record.data as Float32Array);
    shapes.set(name, record.shape);
  }
  if (stray.length > 0) {
    throw new CheckpointError(
      checkpoint,
      `${CHECKPOINT_OPTIMIZER_FILE} holds tensors that are no float32 AdamW moments: ${listNames(stray)}`,
    );
  }
  for (const [prefix, moments] of [
    [OPTIMIZER_M_PREFIX, m],
    [OPTIMIZER_V_PREFIX, v],
  ] as const) {
    const expected = new Map([...paramShapes].map(([name, shape]) => [`${prefix}${name}`, shape]));
    const actual = new Map(
      [...moments.keys()].map((name) => [`${prefix}${name}`, shapes.get(`${prefix}${name}`) ?? []]),
    );
    const problems = compareShapes(CHECKPOINT_OPTIMIZER_FILE, actual, expected);
    if (problems.length > 0)
      throw new CheckpointError(checkpoint, `${problems.join('; ')} (the moments must match ${CHECKPOINT_MODEL_FILE})`);
  }
  const paramSteps = new Map(Object.entries(section.paramSteps ?? {}));
  const unknown = [...paramSteps.keys()].filter((name) => !paramShapes.has(name));
  if (unknown.length > 0)
    throw new CheckpointError(checkpoint, `optimizer.paramSteps names unknown parameters: ${listNames(unknown)}`);
  return { step: section.step, paramSteps, m, v };
}

const BLOCK = /^([A-Za-z_]*blocks)\.(\d+)\./;

/** Block prefix (blocks, decoder_blocks) -> number of blocks, from the largest index seen. */
function blockDepths(names: Iterable<string>): Map<string, number> {
  const depths = new Map<string, number>();
  for (const name of names) {
    const match = BLOCK.exec(name);
    if (match) depths.set(match[1], Math.max(depths.get(match[1]) ?? 0, Number(match[2]) + 1));
  }
  return depths;
}

function depthLabel(prefix: string): string {
  return prefix === 'blocks' ? 'depth' : `${prefix.replace(/_?blocks$/, '')} depth`;
}

/**
 * What differs between a file's tensors and the expected ones, in words: block depths first
 * ("has blocks.3.* but the config has depth 2"), then missing and unexpected names, then shapes.
 */
export function compareShapes(
  file: string,
  actual: Map<string, readonly number[]>,
  expected: Map<string, readonly number[]>,
): string[] {
  const problems: string[] = [];
  const actualDepths = blockDepths(actual.keys());
  const expectedDepths = blockDepths(expected.keys());
  const depthMismatch = new Set<string>();
  for (const prefix of new Set([...actualDepths.keys(), ...expectedDepths.keys()])) {
    const have = actualDepths.get(prefix) ?? 0;
    const want = expectedDepths.get(prefix) ?? 0;
    if (have === want) continue;
    depthMismatch.add(prefix);
    if (have === 0) problems.push(`${file} has no ${prefix}.* but the config has ${depthLabel(prefix)} ${want}`);
    else if (have > want)
      problems.push(`${file} has ${prefix}.${have - 1}.* but the config has ${depthLabel(prefix)} ${want}`);
    else
      problems.push(
        `${file} has ${prefix}.0-${have - 1} (${have} blocks) but the config has ${depthLabel(prefix)} ${want}`,
      );
  }
  // Names explained by a depth mismatch are not listed again.
  const explained = (name: string) => {
    const match = BLOCK.exec(name);
    return match !== null && depthMismatch.has(match[1]);
  };
  const missing = [...expected.keys()].filter((name) => !actual.has(name) && !explained(name));
  const unexpected = [...actual.keys()].filter((name) => !expected.has(name) && !explained(name));
  if (missing.length > 0) problems.push(`${file} lacks ${listNames(missing)}, which the model has`);
  if (unexpected.length > 0) problems.push(`${file} has ${listNames(unexpected)}, which the model lacks`);
  const reshaped: string[] = [];
  for (const [name, shape] of actual) {
    const want = expected.get(name);
    if (want && !sameShape(shape, want))
      reshaped.push(`${name} of shape [${shape.join(', ')}] where the model expects [${want.join(', ')}]`);
  }
  if (reshaped.length > 0) problems.push(`${file} has ${listNames(reshaped, 4)}`);
  return problems;
}

function listNames(names: string[], limit = 6): string {
  const shown = names.slice(0, limit).join(', ');
  return names.length > limit ? `${shown} and ${names.length - limit} more` : shown;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
