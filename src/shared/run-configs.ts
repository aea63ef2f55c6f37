import type { z } from 'zod';
import type { JobKind } from './engine-protocol';
import { issueLines } from './config-object';
import { EvaluationRequest } from './evaluation';
import { FinetuneConfig } from './finetune-config';
import { LandscapeRequest } from './landscape';
import { PretrainConfig } from './pretrain-config';

/** The config schema of each kind of run: what runs.create validates and the new-run form is built from. */
export const RUN_CONFIG_SCHEMAS: Record<JobKind, z.ZodType> = {
  pretrain: PretrainConfig,
  finetune: FinetuneConfig,
  evaluate: EvaluationRequest,
  landscape: LandscapeRequest,
};

/** A config of `kind` with its defaults filled in, or the schema's messages ("field: problem"). */
export function parseRunConfig(
  kind: JobKind,
  config: unknown,
): { ok: true; config: Record<string, unknown> } | { ok: false; issues: string[] } {
  const parsed = RUN_CONFIG_SCHEMAS[kind].safeParse(config);
  if (parsed.success) return { ok: true, config: parsed.data as Record<string, unknown> };
  return {
    ok: false,
    issues: issueLines(parsed.error),
  };
}

/**
 * The checkpoint a run of `kind` starts from, as its config names it: a fine-tuning run's source, an
 * evaluation's or landscape's model; null for pre-training and for fine-tuning from scratch. The run that
 * owns this checkpoint is the run's parent (the store derives it from here, never from the caller).
 */
export function modelCheckpointOf(kind: string, config: Record<string, unknown>): string | null {
  const text = (value: unknown): string | null =>
    typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
  switch (kind) {
    case 'finetune': {
      const source = config.source;
      if (typeof source !== 'object' || source === null) return null;
      const { kind: sourceKind, checkpoint } = source as Record<string, unknown>;
      return sourceKind === 'pretrained' ? text(checkpoint) : null;
    }
    case 'evaluate':
    case 'landscape':
      return text(config.checkpoint);
    default:
      return null;
  }
}
