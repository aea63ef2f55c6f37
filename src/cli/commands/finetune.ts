import { InvalidArgumentError, type Command } from 'commander';
import { FINETUNE_METHODS } from '@shared/finetune-config';
import { MODEL_PRESETS } from '@shared/model-config';
import { readConfigFile } from '../config-file';
import { withEngineOptions } from '../engine-options';
import { trainingDatasetFromFlags, withTrainingDatasetOptions, type TrainingDatasetFlags } from '../dataset-arg';
import { backendOption, fail, positiveInt } from '../output';
import { runTrainingFromFlags, type TrainingFlags } from '../run-training';
import { isRecord } from '@shared/unknown-value';

interface FinetuneOptions extends TrainingDatasetFlags, TrainingFlags {
  from?: string;
  scratch?: boolean;
  model?: string;
  method?: string;
  eps?: number;
  batch?: number;
  seed?: number;
  out?: string;
  config?: string;
}

/** commander parser for a number > 0 (`--eps 8`, `--eps 127.5`). */
function positiveNumber(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new InvalidArgumentError(`expected a number > 0, got "${value}"`);
  return number;
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
  const dataset = trainingDatasetFromFlags(options, fromFile);
  if (dataset) config.dataset = dataset;
  if (options.eps !== undefined) config.threat = { ...asObject(fromFile.threat), eps: options.eps };
  for (const [key, value] of [
    ['method', options.method],
    ['epochs', options.epochs],
    ['batchSize', options.batch],
    ['seed', options.seed],
  ] as const) {
    if (value !== undefined) config[key] = value;
  }
  return config;
}

export function registerFinetune(program: Command): void {
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
    )
      .option(
        '--eps <e>',
        'threat-model radius in 1/255 units (default 8; 4 for ImageNet-sized images)',
        positiveNumber,
      )
      .option('--epochs <n>', 'epochs (with --resume: raise the total)', positiveInt)
      .option('--batch <n>', 'batch size', positiveInt)
      .option('--seed <n>', 'seed of the head, attacks, drop path and data order', positiveInt)
      .option('--out <dir>', 'output folder for checkpoints and config.json')
      .option('--config <file.json>', 'a fine-tuning config (JSON); flags override its fields')
      .option(
        '--resume <dir>',
        'continue the run in <dir> from its newest good checkpoint (or <dir>/checkpoints/<name>: from that one)',
      )
      .option('--overwrite', 'start over in an --out folder that holds a run, deleting its checkpoints and config.json')
      .option('--json', 'one JSON event per line on stdout, the last one {"type":"done",...} naming the checkpoint')
      .addOption(backendOption()),
  ).action(async (options: FinetuneOptions) => {
    const json = options.json === true;
    try {
      const outDir = options.resume ?? options.out;
      if (!outDir) throw new Error('Give --out <dir> for a new run, or --resume <dir> to continue one.');
      const config = options.resume !== undefined ? {} : finetuneConfigFromFlags(options);

      await runTrainingFromFlags('finetune', options, outDir, config);
    } catch (error) {
      fail(error, json);
    }
  });
}
