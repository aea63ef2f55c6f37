import { z } from 'zod';
import { RunBackend } from './system';

/**
 * What a training or evaluation run reports while it works. The engine emits these; the CLI prints
 * them (one JSON object per line with --json), the job runner stores them and forwards them to the UI.
 */
export const RunKind = z.enum(['pretrain', 'finetune', 'evaluate']);
export type RunKind = z.infer<typeof RunKind>;

/** The images of one preview snapshot, one PNG strip per kind (the fixed preview batch, left to right). */
export const PreviewKind = z.enum(['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction']);
export type PreviewKind = z.infer<typeof PreviewKind>;

/** The PyTorch engine's compute, for the run header: devices, precision and processes. */
export const TorchEngineInfo = z.object({
  name: z.literal('torch'),
  /** torch.__version__ */
  version: z.string(),
  device: z.enum(['cpu', 'cuda']),
  /** 'cpu', or the CUDA devices' names. */
  devices: z.array(z.string()),
  precision: z.enum(['fp32', 'bf16', 'fp16']),
  /** Processes training together (DDP ranks over all nodes). */
  worldSize: z.number().int().positive(),
});
export type TorchEngineInfo = z.infer<typeof TorchEngineInfo>;

export const StartedEvent = z.object({
  type: z.literal('started'),
  runKind: RunKind,
  backend: RunBackend,
  /** Present on the PyTorch engine (backend 'torch'). */
  engine: TorchEngineInfo.optional(),
  outDir: z.string(),
  /** Where the run starts: 0 for a new run, the checkpoint's step for a resumed one. */
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  totalSteps: z.number().int().positive(),
  stepsPerEpoch: z.number().int().positive(),
  resumedFrom: z.string().nullable(),
});
export type StartedEvent = z.infer<typeof StartedEvent>;

/**
 * When a run (re)starts as `event` says, the last step of what an earlier attempt recorded (metric
 * points, previews, checkpoints) that stays the run's history: the step it resumes from, or -1 when it
 * starts from nothing. Anything later belongs to an abandoned attempt (the store drops it, and so do views).
 */
export function lastKeptStep(event: StartedEvent): number {
  return event.resumedFrom === null ? -1 : event.step;
}

export const ProgressEvent = z.object({
  type: z.literal('progress'),
  /** 1-based epoch being trained, of `epochs`. */
  epoch: z.number().int().positive(),
  epochs: z.number().int().positive(),
  /** Global optimiser steps done, of `totalSteps`. */
  step: z.number().int().nonnegative(),
  totalSteps: z.number().int().positive(),
  imagesPerSecond: z.number().nonnegative(),
  etaSeconds: z.number().nonnegative(),
});
export type ProgressEvent = z.infer<typeof ProgressEvent>;

export const MetricsEvent = z.object({
  type: z.literal('metrics'),
  step: z.number().int().nonnegative(),
  epoch: z.number().nonnegative(),
  /** e.g. loss, recon_loss, mi, lr, images_per_s; finite numbers only. */
  values: z.record(z.string(), z.number()),
});
export type MetricsEvent = z.infer<typeof MetricsEvent>;

export const PreviewEvent = z.object({
  type: z.literal('preview'),
  step: z.number().int().nonnegative(),
  epoch: z.number().nonnegative(),
  dir: z.string(),
  files: z.partialRecord(PreviewKind, z.string()),
  count: z.number().int().positive(),
  imageSize: z.number().int().positive(),
  /** The perturbation strip shows 0.5 + scale * delta, clipped: the amplification applied. */
  perturbationScale: z.number().positive(),
});
export type PreviewEvent = z.infer<typeof PreviewEvent>;

export const CheckpointEvent = z.object({
  type: z.literal('checkpoint'),
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  path: z.string(),
});
export type CheckpointEvent = z.infer<typeof CheckpointEvent>;

export const LogEvent = z.object({
  type: z.literal('log'),
  level: z.enum(['info', 'warn', 'error']),
  message: z.string(),
});
export type LogEvent = z.infer<typeof LogEvent>;

/**
 * What a finished run produced: a training run's final checkpoint, an evaluation's report.json, a
 * landscape's landscape.json. null: a training run that wrote no checkpoint (it had no epoch left).
 */
export const RunOutput = z.object({
  kind: z.enum(['checkpoint', 'report', 'landscape']),
  path: z.string().min(1),
});
export type RunOutput = z.infer<typeof RunOutput>;

export const DoneEvent = z.object({
  type: z.literal('done'),
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  output: RunOutput.nullable(),
  seconds: z.number().nonnegative(),
  summary: z.record(z.string(), z.number()),
});
export type DoneEvent = z.infer<typeof DoneEvent>;

/**
 * Why a run failed. config: its config or data cannot work (a bad key, a dataset that does not fit):
 * resuming would fail the same way, so the user edits a copy. run: this attempt stopped (diverged, a
 * damaged checkpoint, an I/O error); resuming from the last good checkpoint may help.
 */
export const FAILURE_CAUSES = ['config', 'run'] as const;
export const FailureCause = z.enum(FAILURE_CAUSES);
export type FailureCause = z.infer<typeof FailureCause>;

export const FailedEvent = z.object({
  type: z.literal('failed'),
  /** What went wrong, where, and what to do. */
  message: z.string(),
  /** Absent from engines that do not tell (evaluation, landscape): taken as `run`. */
  cause: FailureCause.optional(),
  step: z.number().int().nonnegative().nullable(),
  /** The last good checkpoint, kept; a resumed run continues from it. */
  lastCheckpoint: z.string().nullable(),
});
export type FailedEvent = z.infer<typeof FailedEvent>;

export const RunEvent = z.discriminatedUnion('type', [
  StartedEvent,
  ProgressEvent,
  MetricsEvent,
  PreviewEvent,
  CheckpointEvent,
  LogEvent,
  DoneEvent,
  FailedEvent,
]);
export type RunEvent = z.infer<typeof RunEvent>;
export type RunEventSink = (event: RunEvent) => void;
