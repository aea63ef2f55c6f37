import type { JobKind } from '@shared/engine-protocol';
import { EVALUATE_FORM } from './evaluate-form';
import { FINETUNE_FORM } from './finetune-form';
import type { FormSpec } from './form-spec';
import { LANDSCAPE_FORM } from './landscape-form';
import { PRETRAIN_FORM } from './pretrain-form';

/** The new-run form of each kind of run. */
export const FORM_SPECS: Record<JobKind, FormSpec> = {
  pretrain: PRETRAIN_FORM,
  finetune: FINETUNE_FORM,
  evaluate: EVALUATE_FORM,
  landscape: LANDSCAPE_FORM,
};

export const KIND_LABELS: Record<JobKind, string> = {
  pretrain: 'Pre-training',
  finetune: 'Fine-tuning',
  evaluate: 'Evaluation',
  landscape: 'Loss landscape',
};
