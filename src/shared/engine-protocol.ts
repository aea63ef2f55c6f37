import { z } from 'zod';
import { EvaluationReport } from './evaluation';
import { RunEvent } from './run-events';
import { ForcedBackend, SystemReport } from './system';

/** The kinds of work a run can be; each kind's config is validated by its own schema in the engine. */
export const JOB_KINDS = ['pretrain', 'finetune', 'evaluate', 'landscape'] as const;
export const JobKind = z.enum(JOB_KINDS);
export type JobKind = z.infer<typeof JobKind>;

/** Work an engine process can be given: one run, from its config, in its output folder. */
export const JobSpec = z.object({
  kind: JobKind,
  config: z.unknown(),
  /** The run's folder: a new run starts there, an interrupted one continues from its newest checkpoint. */
  outDir: z.string(),
});
export type JobSpec = z.infer<typeof JobSpec>;

/** Messages from a parent (Electron main, CLI, web server) to an engine process. */
export const ParentMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('probe'), forced: ForcedBackend.nullable() }),
  z.object({ type: z.literal('run'), job: JobSpec, forced: ForcedBackend.nullable() }),
  /** Stop the run at the next step boundary; the last checkpoint is kept. */
  z.object({ type: z.literal('cancel') }),
]);
export type ParentMessage = z.infer<typeof ParentMessage>;

/** Messages from an engine process to its parent. */
export const EngineMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), report: SystemReport }),
  z.object({ type: z.literal('event'), event: RunEvent }),
  /** An evaluation's report, sent before its `done` event so the parent stores both without reading the file. */
  z.object({ type: z.literal('evaluation'), report: EvaluationReport }),
  /** The run ended (done, failed or cancelled, as its events said); the process may be stopped. */
  z.object({ type: z.literal('finished'), outcome: z.enum(['done', 'failed', 'cancelled']) }),
  /** The process could not do what it was asked (no backend, a malformed message). */
  z.object({ type: z.literal('failed'), message: z.string() }),
]);
export type EngineMessage = z.infer<typeof EngineMessage>;
