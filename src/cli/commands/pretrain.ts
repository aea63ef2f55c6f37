import type { Command } from 'commander';
import { readConfigFile } from '../config-file';
import { MODEL_PRESETS } from '../../shared/model-config';
import { PRETRAIN_MODES } from '../../shared/pretrain-config';
import { BACKEND_ENV, readForcedBackend } from '../../shared/system';
import { datasetFromArg } from '../dataset-arg';
import { backendOption, fail, positiveInt } from '../output';
import { humanRenderer } from '../progress-line';

interface PretrainOptions {
  dataset: string;
  dataRoot?: string;
  imageSize?: number;
  datasetSize?: number;
  model?: string;
  mode?: string;
  epochs?: number;
  batch?: number;
  seed?: number;
  out?: string;
  config?: string;
  resume?: string;
  json?: boolean;
  backend?: string;
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('pre-train a ViT masked autoencoder with MIMIR, adversarial MAE or plain MAE')
    .option(
      '--dataset <name>',
      'builtin, cifar10, or an image folder (class per sub-folder, or Tiny-ImageNet)',
      'builtin',
    )
    .option('--data-root <dir>', 'where cifar10 lives (default ~/.mimir/datasets/cifar10, or $MIMIR_DATA/cifar10)')
    .option('--image-size <px>', 'image side for an image folder or the built-in set', positiveInt)
    .option('--dataset-size <n>', 'images of the built-in set (default 5000)', positiveInt)
    .option('--model <preset>', `model preset: ${MODEL_PRESETS.join(', ')}`)
    .option('--mode <mode>', `${PRETRAIN_MODES.join(', ')}`)
    .option('--epochs <n>', 'epochs (with --resume: raise the total)', positiveInt)
    .option('--batch <n>', 'batch size', positiveInt)
    .option('--seed <n>', 'seed of initialisation, masks, attacks and data order', positiveInt)
    .option('--out <dir>', 'output folder for checkpoints, previews and config.json')
    .option('--config <file.json>', 'a pre-training config (JSON); flags override its fields')
    .option('--resume <dir>', 'continue the run in <dir> from its newest good checkpoint')
    .option('--json', 'one JSON event per line on stdout, the last one {"type":"done",...} naming the checkpoint')
    .addOption(backendOption())
    .action(async (options: PretrainOptions) => {
      const json = options.json === true;
      try {
        const outDir = options.resume ?? options.out;
        if (!outDir) throw new Error('Give --out <dir> for a new run, or --resume <dir> to continue one.');
        const fromFile = options.config ? readConfigFile(options.config) : {};
        const config: Record<string, unknown> = { ...fromFile };
        const datasetGiven = options.dataset !== 'builtin' || !('dataset' in fromFile);
        if (datasetGiven) {
          config.dataset = datasetFromArg(options.dataset, {
            dataRoot: options.dataRoot,
            imageSize: options.imageSize,
            size: options.datasetSize,
          });
        }
        for (const [key, value] of [
          ['model', options.model],
          ['mode', options.mode],
          ['epochs', options.epochs],
          ['batchSize', options.batch],
          ['seed', options.seed],
        ] as const) {
          if (value !== undefined) config[key] = value;
        }

        const { selectBackend } = await import('../../engine/backend');
        const { runPretraining, RunCancelledError } = await import('../../engine/pretrain/trainer');
        await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        const render = json ? null : humanRenderer();
        const controller = new AbortController();
        process.once('SIGINT', () => controller.abort());
        try {
          await runPretraining(config, {
            outDir,
            resume: options.resume !== undefined,
            ...(options.resume !== undefined && options.epochs !== undefined ? { epochsOverride: options.epochs } : {}),
            signal: controller.signal,
            emit: (event) => (json ? process.stdout.write(`${JSON.stringify(event)}\n`) : render?.(event)),
          });
        } catch (error) {
          if (error instanceof RunCancelledError) {
            process.stderr.write(`mimir: cancelled; resume with: mimir pretrain --resume ${outDir}\n`);
            process.exit(130);
          }
          // The run already printed its `failed` event in --json mode.
          if (json) process.exit(1);
          throw error;
        }
      } catch (error) {
        fail(error, json);
      }
    });
}
