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
