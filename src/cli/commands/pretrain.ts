import type { Command } from 'commander';
import { readConfigFile } from '../config-file';
import { withEngineOptions } from '../engine-options';
import { MODEL_PRESETS } from '@shared/model-config';
import { PRETRAIN_MODES } from '@shared/pretrain-config';
import { trainingDatasetFromFlags, withTrainingDatasetOptions, type TrainingDatasetFlags } from '../dataset-arg';
import { backendOption, fail, positiveInt } from '../output';
import { runTrainingFromFlags, type TrainingFlags } from '../run-training';

interface PretrainOptions extends TrainingDatasetFlags, TrainingFlags {
  model?: string;
  mode?: string;
  batch?: number;
  seed?: number;
  out?: string;
  config?: string;
}

export function registerPretrain(program: Command): void {
  withEngineOptions(
    withTrainingDatasetOptions(
      program
        .command('pretrain')
        .description('pre-train a ViT masked autoencoder with MIMIR, adversarial MAE or plain MAE'),
    ),
  )
    .option('--model <preset>', `model preset: ${MODEL_PRESETS.join(', ')}`)
    .option('--mode <mode>', `${PRETRAIN_MODES.join(', ')}`)
    .option('--epochs <n>', 'epochs (with --resume: raise the total)', positiveInt)
    .option('--batch <n>', 'batch size', positiveInt)
    .option('--seed <n>', 'seed of initialisation, masks, attacks and data order', positiveInt)
    .option('--out <dir>', 'output folder for checkpoints, previews and config.json')
    .option('--config <file.json>', 'a pre-training config (JSON); flags override its fields')
    .option(
      '--resume <dir>',
      'continue the run in <dir> from its newest good checkpoint (or <dir>/checkpoints/<name>: from that one)',
    )
    .option(
      '--overwrite',
      'start over in an --out folder that holds a run, deleting its checkpoints, previews and config.json',
    )
    .option('--json', 'one JSON event per line on stdout, the last one {"type":"done",...} naming the checkpoint')
    .addOption(backendOption())
    .action(async (options: PretrainOptions) => {
      const json = options.json === true;
      try {
        const outDir = options.resume ?? options.out;
        if (!outDir) throw new Error('Give --out <dir> for a new run, or --resume <dir> to continue one.');
        const fromFile = options.config ? readConfigFile(options.config) : {};
        const config: Record<string, unknown> = { ...fromFile };
        const dataset = trainingDatasetFromFlags(options, fromFile);
        if (dataset) config.dataset = dataset;
        for (const [key, value] of [
          ['model', options.model],
          ['mode', options.mode],
          ['epochs', options.epochs],
          ['batchSize', options.batch],
          ['seed', options.seed],
        ] as const) {
          if (value !== undefined) config[key] = value;
        }

        await runTrainingFromFlags('pretrain', options, outDir, config);
      } catch (error) {
        fail(error, json);
      }
    });
}
