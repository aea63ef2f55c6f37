import { z } from 'zod';

/** The folder a run keeps its checkpoints in, inside its run folder. */
export const RUN_CHECKPOINTS_DIR = 'checkpoints';

/**
 * A checkpoint is a directory (e.g. <out>/checkpoints/epoch-0005/) holding:
 *   model.safetensors      the parameters under their native names and layouts (float32)
 *   optimizer.safetensors  AdamW's moments: exp_avg.<param> and exp_avg_sq.<param> (absent without an optimiser)
 *   checkpoint.json        this manifest: what, when, where in the run, and the files' checksums
 * Beside the checkpoint directories, a `latest` file names the newest one.
 */
export const CHECKPOINT_FORMAT = 'mimir-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_MANIFEST_FILE = 'checkpoint.json';
export const CHECKPOINT_MODEL_FILE = 'model.safetensors';
export const CHECKPOINT_OPTIMIZER_FILE = 'optimizer.safetensors';
export const CHECKPOINT_LATEST_FILE = 'latest';
/** Names in optimizer.safetensors: `${prefix}${param name}`. */
export const OPTIMIZER_M_PREFIX = 'exp_avg.';
export const OPTIMIZER_V_PREFIX = 'exp_avg_sq.';

export const CheckpointKind = z.enum(['pretrain', 'finetune']);
export type CheckpointKind = z.infer<typeof CheckpointKind>;

const count = z.number().int().min(0);
const uint32 = z.number().int().min(0).max(0xffffffff);

export const CheckpointFileInfo = z.object({
  bytes: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'),
});
export type CheckpointFileInfo = z.infer<typeof CheckpointFileInfo>;

export const CheckpointOptimizer = z.object({
  name: z.literal('adamw'),
  /** Optimiser steps taken (equals `step` unless some iterations skipped the update). */
  step: count,
  /** Steps of each parameter where they differ from `step` (a parameter that went without a gradient). */
  paramSteps: z.record(z.string(), count).optional(),
  /** The learning rate of the last step (before per-parameter scales). */
  lr: z.number().min(0),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]),
  eps: z.number().positive(),
  weightDecay: z.number().min(0),
  maxGradNorm: z.number().positive().nullable(),
  /** Anything else the trainer wants back on resume (layer decay, base lr, ...). */
  extra: z.record(z.string(), z.json()).default({}),
});
export type CheckpointOptimizer = z.infer<typeof CheckpointOptimizer>;

export const CheckpointManifest = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.literal(CHECKPOINT_VERSION),
  kind: CheckpointKind,
  /** Epochs completed: a resumed run continues with the 0-based epoch of this number. */
  epoch: count,
  /** Global iterations completed. */
  step: count,
  /** The run's configuration, validated by the caller's own schema. */
  runConfig: z.json(),
  /** The model's configuration, validated by the caller's own schema. */
  modelConfig: z.json(),
  optimizer: CheckpointOptimizer.nullable(),
  rng: z.object({
    /** The run's xoshiro128** state (Rng.state()). */
    state: z.tuple([uint32, uint32, uint32, uint32]),
    /** Where the data iterator stands (order, position, its own generator), as the iterator exports it. */
    dataIterator: z.json(),
  }),
  /** Summary metrics at save time; null where a value was not finite. */
  metrics: z.record(z.string(), z.number().nullable()).default({}),
  createdAt: z.iso.datetime(),
  /** The TensorFlow.js backend that produced it. */
  backend: z.string().min(1),
  files: z.object({
    [CHECKPOINT_MODEL_FILE]: CheckpointFileInfo,
    [CHECKPOINT_OPTIMIZER_FILE]: CheckpointFileInfo.optional(),
  }),
});
export type CheckpointManifest = z.infer<typeof CheckpointManifest>;
