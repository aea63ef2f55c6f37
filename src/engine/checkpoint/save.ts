/**
 * Saving a checkpoint atomically: every file goes into a hidden temporary directory beside the
 * final one, which is renamed into place only when complete and flushed; then the `latest` pointer
 * is replaced (temporary file + rename). A crash at any point leaves either the previous state or
 * the new checkpoint, plus at most a hidden temporary directory that readers ignore.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_LATEST_FILE,
  CHECKPOINT_MANIFEST_FILE,
  CHECKPOINT_MODEL_FILE,
  CHECKPOINT_OPTIMIZER_FILE,
  CHECKPOINT_VERSION,
  CheckpointManifest,
  OPTIMIZER_M_PREFIX,
  OPTIMIZER_V_PREFIX,
  type CheckpointKind,
} from '@shared/checkpoint';
import { isTemporarySibling, syncDirectory, writeFileAtomic } from '../io/atomic-file';
import { tensorSource, writeSafetensors, type TensorSource } from '../io/safetensors';
import type { RngState } from '../rng';
import type { AdamW } from '../train/optimizer';
import { readManifest } from './checkpoint-files';

type Json = CheckpointManifest['runConfig'];

export interface CheckpointInput {
  kind: CheckpointKind;
  /** Epochs completed. */
  epoch: number;
  /** Global iterations completed. */
  step: number;
  runConfig: Json;
  modelConfig: Json;
  /** The model's parameters in their native names and order. */
  params: Map<string, tf.Tensor>;
  /** The optimiser and the learning rate of its last step; omit for weights only. */
  optimizer?: { adamw: AdamW; lr: number; extra?: Record<string, Json> } | null;
  rng: { state: RngState; dataIterator: Json };
  metrics?: Record<string, number>;
  /** Default: the active TensorFlow.js backend. */
  backend?: string;
}

export interface SaveOptions {
  /** Directory name; default `epoch-NNNN` from the epoch. */
  name?: string;
  /** Keep only the newest K checkpoints (by step)... */
  keepLast?: number;
  /** ...plus every one whose epoch is a multiple of N. */
  keepEvery?: number;
  /** Clock for createdAt (tests). */
  now?: () => Date;
}

export interface SavedCheckpoint {
  path: string;
  manifest: CheckpointManifest;
  /** Checkpoint directories removed by the retention rule. */
  removed: string[];
}

const TEMP_PREFIX = '.tmp-';
const OLD_PREFIX = '.old-';
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function checkpointName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, '0')}`;
}

/** Hidden entries (temporary and replaced directories, dot files) are never checkpoints. */
export function isCheckpointName(name: string): boolean {
  return NAME_PATTERN.test(name) && name !== CHECKPOINT_LATEST_FILE;
}

export async function saveCheckpoint(
  dir: string,
  input: CheckpointInput,
  options: SaveOptions = {},
): Promise<SavedCheckpoint> {
  const name = options.name ?? checkpointName(input.epoch);
  if (!isCheckpointName(name)) throw new Error(`invalid checkpoint name "${name}"`);
  for (const [what, value] of [
    ['keepLast', options.keepLast],
    ['keepEvery', options.keepEvery],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1))
      throw new Error(`${what} must be a positive integer, got ${value}`);
  }
  await mkdir(dir, { recursive: true });
  await removeAbandoned(dir);

  const temporary = path.join(dir, `${TEMP_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const final = path.join(dir, name);
  await mkdir(temporary);
  let manifest: CheckpointManifest;
  try {
    const modelSources = new Map<string, TensorSource>(
      [...input.params].map(([param, tensor]) => [param, tensorSource(tensor, 'F32')]),
    );
    const model = await writeSafetensors(path.join(temporary, CHECKPOINT_MODEL_FILE), modelSources, {
      format: CHECKPOINT_FORMAT,
      kind: input.kind,
    });

    let optimizerSection: CheckpointManifest['optimizer'] = null;
    let optimizerFile: { bytes: number; sha256: string } | undefined;
    if (input.optimizer) {
      const { adamw, lr, extra } = input.optimizer;
      const state = adamw.stateTensors();
      const sources: [string, TensorSource][] = [];
      for (const [param, m] of state.m) sources.push([`${OPTIMIZER_M_PREFIX}${param}`, tensorSource(m, 'F32')]);
      for (const [param, v] of state.v) sources.push([`${OPTIMIZER_V_PREFIX}${param}`, tensorSource(v, 'F32')]);
      optimizerFile = await writeSafetensors(path.join(temporary, CHECKPOINT_OPTIMIZER_FILE), sources, {
        format: CHECKPOINT_FORMAT,
        step: String(state.step),
      });
      const differing = [...state.paramSteps].filter(([, t]) => t !== state.step);
      const { betas, eps, weightDecay, maxGradNorm } = adamw.hyperparameters;
      optimizerSection = {
        name: 'adamw',
        step: state.step,
        ...(differing.length > 0 ? { paramSteps: Object.fromEntries(differing) } : {}),
        lr,
        betas: [betas[0], betas[1]],
        eps,
        weightDecay,
        maxGradNorm,
        extra: extra ?? {},
      };
    }

    manifest = CheckpointManifest.parse({
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      kind: input.kind,
      epoch: input.epoch,
      step: input.step,
      runConfig: input.runConfig,
      modelConfig: input.modelConfig,
      optimizer: optimizerSection,
      rng: { state: [...input.rng.state], dataIterator: input.rng.dataIterator },
      metrics: Object.fromEntries(
        Object.entries(input.metrics ?? {}).map(([k, v]) => [k, Number.isFinite(v) ? v : null]),
      ),
      createdAt: (options.now ?? (() => new Date()))().toISOString(),
      backend: input.backend ?? tf.getBackend(),
      files: {
        [CHECKPOINT_MODEL_FILE]: model,
        ...(optimizerFile ? { [CHECKPOINT_OPTIMIZER_FILE]: optimizerFile } : {}),
      },
    });
    // Flushes the temporary directory too, so the whole checkpoint is on disk before the rename below.
    await writeFileAtomic(path.join(temporary, CHECKPOINT_MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    await moveIntoPlace(temporary, final);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
  await syncDirectory(dir);
  await writeLatest(dir, name);
  const removed = await applyRetention(dir, name, options);
  return { path: final, manifest, removed };
}

/** Rename `temporary` to `final`; an existing checkpoint of the same name is replaced. */
async function moveIntoPlace(temporary: string, final: string): Promise<void> {
  try {
    await rename(temporary, final);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') throw error;
  }
  const old = path.join(
    path.dirname(final),
    `${OLD_PREFIX}${path.basename(final)}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  await rename(final, old);
  await rename(temporary, final);
  await rm(old, { recursive: true, force: true });
}

/** Point `latest` at `name`. */
async function writeLatest(dir: string, name: string): Promise<void> {
  await writeFileAtomic(path.join(dir, CHECKPOINT_LATEST_FILE), `${name}\n`);
}

export async function readLatestPointer(dir: string): Promise<string | null> {
  try {
    const name = (await readFile(path.join(dir, CHECKPOINT_LATEST_FILE), 'utf8')).trim();
    return isCheckpointName(name) ? name : null;
  } catch {
    return null;
  }
}

/** Remove temporary directories left by saves whose process is gone (a crash mid-save). */
async function removeAbandoned(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    if (!entry.startsWith(TEMP_PREFIX) && !entry.startsWith(OLD_PREFIX) && !isTemporarySibling(entry)) continue;
    const pid = Number(/-(\d+)-[0-9a-f]{8}$/.exec(entry)?.[1]);
    const owned = Number.isInteger(pid) && (pid === process.pid || isAlive(pid));
    if (owned) continue; // a save in progress
    await rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Keep the newest `keepLast` checkpoints (by step, then epoch) plus every one whose epoch is a
 * multiple of `keepEvery`, the one just saved, and whatever `latest` names. A directory whose
 * manifest cannot be read is never removed: it may be a user's to inspect.
 */
async function applyRetention(dir: string, saved: string, options: SaveOptions): Promise<string[]> {
  if (options.keepLast === undefined) return [];
  const checkpoints: { name: string; epoch: number; step: number }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !isCheckpointName(entry.name)) continue;
    try {
      const manifest = await readManifest(path.join(dir, entry.name));
      checkpoints.push({ name: entry.name, epoch: manifest.epoch, step: manifest.step });
    } catch {
      // unreadable: keep
    }
  }
  checkpoints.sort((a, b) => b.step - a.step || b.epoch - a.epoch);
  const latest = await readLatestPointer(dir);
  const keepEvery = options.keepEvery;
  const removed: string[] = [];
  checkpoints.forEach((checkpoint, index) => {
    const keep =
      index < (options.keepLast ?? Infinity) ||
      (keepEvery !== undefined && checkpoint.epoch % keepEvery === 0) ||
      checkpoint.name === saved ||
      checkpoint.name === latest;
    if (!keep) removed.push(path.join(dir, checkpoint.name));
  });
  for (const doomed of removed) {
    // Rename first so a crash mid-removal leaves a hidden directory, never a half checkpoint.
    const hidden = path.join(
      dir,
      `${OLD_PREFIX}${path.basename(doomed)}-${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    await rename(doomed, hidden);
    await rm(hidden, { recursive: true, force: true });
  }
  return removed;
}
