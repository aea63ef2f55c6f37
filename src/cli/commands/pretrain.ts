import type { Command } from 'commander';
import { readConfigFile } from '../config-file';
import { torchLaunchFromFlags, withEngineOptions, type EngineFlags } from '../engine-options';
import { MODEL_PRESETS } from '../../shared/model-config';
import { PRETRAIN_MODES } from '../../shared/pretrain-config';
import { trainingDatasetFromFlags, withTrainingDatasetOptions, type TrainingDatasetFlags } from '../dataset-arg';
import { backendOption, fail, positiveInt } from '../output';
import { runTrainingCommand } from '../run-training';

interface PretrainOptions extends TrainingDatasetFlags, EngineFlags {
  model?: string;
  mode?: string;
  epochs?: number;
  batch?: number;
  seed?: number;
  out?: string;
  config?: string;
  resume?: string;
  overwrite?: boolean;
  json?: boolean;
  backend?: string;
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

        await runTrainingCommand({
          name: 'pretrain',
          config,
          outDir,
          resume: options.resume !== undefined,
          overwrite: options.overwrite === true,
          json,
          ...(options.epochs !== undefined ? { epochs: options.epochs } : {}),
          ...(options.backend !== undefined ? { backend: options.backend } : {}),
          torch: torchLaunchFromFlags(options),
        });
      } catch (error) {
        fail(error, json);
      }
    });
}
