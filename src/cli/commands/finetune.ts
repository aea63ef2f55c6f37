import type { Command } from 'commander';
import { FINETUNE_METHODS } from '@shared/finetune-config';
import { MODEL_PRESETS } from '@shared/model-config';
import { readConfigFile } from '../config-file';
import { withEngineOptions } from '../engine-options';
import { withTrainingDatasetOptions, type TrainingDatasetFlags } from '../dataset-arg';
import { commandAction, positiveNumber } from '../output';
import { runTrainingFromFlags, withTrainingFlags, withTrainingRunOptions, type TrainingFlags } from '../run-training';
import { isRecord } from '@shared/unknown-value';

interface FinetuneOptions extends TrainingDatasetFlags, TrainingFlags {
  from?: string;
  scratch?: boolean;
  model?: string;
  method?: string;
  eps?: number;
}

function asObject(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

/** The run config: the --config file's fields, overridden by the flags given. */
export function finetuneConfigFromFlags(options: FinetuneOptions): Record<string, unknown> {
  const fromFile = options.config ? readConfigFile(options.config) : {};
  const config: Record<string, unknown> = { ...fromFile };
  if (options.from !== undefined && options.scratch) {
    throw new Error('Give either --from <pre-training checkpoint> or --scratch, not both.');
  }
  if (options.model !== undefined && !options.scratch) {
    throw new Error("--model goes with --scratch; a pre-trained encoder's shape comes from its checkpoint (--from).");
  }
  if (options.from !== undefined) config.source = { kind: 'pretrained', checkpoint: options.from };
  if (options.scratch) {
    const fileSource = asObject(fromFile.source);
    const model = options.model ?? (fileSource.kind === 'scratch' ? fileSource.model : undefined);
    config.source = { kind: 'scratch', ...(model !== undefined ? { model } : {}) };
  }
  if (config.source === undefined) {
    throw new Error(
      'Give --from <pre-training checkpoint or run folder> to fine-tune a pre-trained encoder, or --scratch [--model preset] to train from scratch (End2End).',
    );
  }
  return withTrainingFlags(config, fromFile, options, {
    threat: options.eps !== undefined ? { ...asObject(fromFile.threat), eps: options.eps } : undefined,
    method: options.method,
  });
}

export function registerFinetune(program: Command): void {
  withTrainingRunOptions(
    withEngineOptions(
      withTrainingDatasetOptions(
        program
          .command('finetune')
          .description(
            'fine-tune a ViT classifier from a pre-training checkpoint (or from scratch) with adversarial training',
          )
          .option(
            '--from <checkpoint>',
            'a pre-training checkpoint, its checkpoints/ folder or its run folder (newest good one)',
          )
          .option('--scratch', 'train every weight from scratch (the paper’s End2End baseline)')
          .option('--model <preset>', `with --scratch: model preset (${MODEL_PRESETS.join(', ')})`)
          .option('--method <method>', FINETUNE_METHODS.join(', ')),
      ),
    ).option(
      '--eps <e>',
      'threat-model radius in 1/255 units (default 8; 4 for ImageNet-sized images)',
      positiveNumber,
    ),
    {
      run: 'fine-tuning',
      writes: 'checkpoints and config.json',
      seed: 'seed of the head, attacks, drop path and data order',
    },
  ).action(
    commandAction((options: FinetuneOptions) =>
      runTrainingFromFlags('finetune', options, () =>
        options.resume !== undefined ? {} : finetuneConfigFromFlags(options),
      ),
    ),
  );
}
