import type { Command } from 'commander';
import { readConfigFile } from '../config-file';
import { withEngineOptions } from '../engine-options';
import { MODEL_PRESETS } from '@shared/model-config';
import { PRETRAIN_MODES } from '@shared/pretrain-config';
import { withTrainingDatasetOptions, type TrainingDatasetFlags } from '../dataset-arg';
import { commandAction } from '../output';
import { runTrainingFromFlags, withTrainingFlags, withTrainingRunOptions, type TrainingFlags } from '../run-training';

interface PretrainOptions extends TrainingDatasetFlags, TrainingFlags {
  model?: string;
  mode?: string;
}

/** The run config: the --config file's fields, overridden by the flags given. */
function pretrainConfigFromFlags(options: PretrainOptions): Record<string, unknown> {
  const fromFile = options.config ? readConfigFile(options.config) : {};
  return withTrainingFlags({ ...fromFile }, fromFile, options, { model: options.model, mode: options.mode });
}

export function registerPretrain(program: Command): void {
  withTrainingRunOptions(
    withEngineOptions(
      withTrainingDatasetOptions(
        program
          .command('pretrain')
          .description('pre-train a ViT masked autoencoder with MIMIR, adversarial MAE or plain MAE'),
      ),
    )
      .option('--model <preset>', `model preset: ${MODEL_PRESETS.join(', ')}`)
      .option('--mode <mode>', `${PRETRAIN_MODES.join(', ')}`),
    {
      run: 'pre-training',
      writes: 'checkpoints, previews and config.json',
      seed: 'seed of initialisation, masks, attacks and data order',
    },
  ).action(
    commandAction((options: PretrainOptions) =>
      runTrainingFromFlags('pretrain', options, () => pretrainConfigFromFlags(options)),
    ),
  );
}
