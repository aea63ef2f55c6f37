import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { TrainingRunOptions } from '@engine/train/run-lifecycle';
import type { TorchLaunch } from '@torch/launch';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { humanRenderer } from './progress-line';
import { ctrlCSignal, exitInterrupted } from './cancel';
import { configuredEngine, torchLaunchFromFlags, type EngineFlags } from './engine-options';
import { backendOption, positiveInt } from './output';
import { trainingDatasetFromFlags, type TrainingDatasetFlags } from './dataset-arg';

export interface TrainingCommand {
  /** The subcommand (the run's kind), for the resume hint: `mimir <name> --resume DIR`. */
  name: 'pretrain' | 'finetune';
  /** The run's config (ignored on --resume: the checkpoint's is used). */
  config: unknown;
  outDir: string;
  /** --resume was given (then `epochs` raises the total, and outDir may name one of the run's checkpoints). */
  resume: boolean;
  /** --overwrite was given: a new run may replace the one `outDir` holds. */
  overwrite: boolean;
  epochs?: number;
  json: boolean;
  backend?: string;
  /** null: the TensorFlow.js engine, a backend selected in this process; else the PyTorch ranks to start. */
  torch: TorchLaunch | null;
}

/**
 * What `mimir pretrain` and `mimir finetune` share once their config is built: the backend, events as
 * JSON lines or a progress bar, Ctrl-C as a cancel (exit 130, with the resume command), and a failure
 * that the run already reported as a `failed` event in --json mode (exit 1). Other errors are rethrown
 * (the command reports them with fail(), also as a `failed` event in --json mode).
 */
export async function runTrainingCommand(command: TrainingCommand): Promise<void> {
  if (command.resume && command.overwrite) {
    throw new Error('--overwrite starts a new run in --out <dir>; it does not go with --resume.');
  }
  const { resumeTarget } = await import('@engine/checkpoint');
  const target = command.resume ? resumeTarget(command.outDir) : { outDir: command.outDir, checkpoint: null };
  if (!command.resume) await prepareNewRunFolder(command);
  const run = await trainingEntry(command);
  const torch = command.torch !== null;
  if (!torch) {
    const { selectBackend } = await import('@engine/backend');
    await selectBackend(readForcedBackend(command.backend, process.env[BACKEND_ENV]), 'cli');
  }
  const isCancel = async (error: unknown): Promise<boolean> => {
    if (torch) return error instanceof (await import('@torch/launch')).TorchRunCancelledError;
    return error instanceof (await import('@engine/train/run-lifecycle')).RunCancelledError;
  };
  const render = command.json ? null : humanRenderer();
  const signal = ctrlCSignal();
  let reported = false;
  try {
    await run({
      outDir: target.outDir,
      resume: command.resume,
      ...(target.checkpoint !== null ? { resumeFrom: target.checkpoint } : {}),
      ...(command.resume && command.epochs !== undefined ? { epochsOverride: command.epochs } : {}),
      signal,
      emit: (event) => {
        if (event.type === 'failed') reported = true;
        if (command.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        else render?.(event);
      },
    });
  } catch (error) {
    if (await isCancel(error)) {
      exitInterrupted(`cancelled; resume with: mimir ${command.name} --resume ${target.outDir}`);
    }
    // The run's own `failed` event said it; anything else is said by the caller's fail().
    if (command.json && reported) process.exit(1);
    throw error;
  }
}

type TrainingEntry = (options: TrainingRunOptions) => Promise<unknown>;

/** The engine's entry point for the command: its Python ranks, or runPretraining / runFinetuning here. */
async function trainingEntry({ name, config, resume, epochs, torch }: TrainingCommand): Promise<TrainingEntry> {
  if (torch) {
    const { finetuneJob, pretrainJob, resumeJob } = await import('@torch/job');
    const { runTorchJob } = await import('@torch/launch');
    const job = resume
      ? await resumeJob(name, epochs)
      : name === 'pretrain'
        ? await pretrainJob(config)
        : await finetuneJob(config);
    return (options) => runTorchJob(job, { ...torch, ...options });
  }
  if (name === 'pretrain') {
    const { runPretraining } = await import('@engine/pretrain/trainer');
    return (options) => runPretraining(config, options);
  }
  const { runFinetuning } = await import('@engine/finetune');
  return (options) => runFinetuning(config, options);
}

/**
 * A new run's folder. One that already holds a run is refused (the new run would replace its
 * checkpoints and config.json) unless --overwrite, which deletes that run's files first so the new
 * run's checkpoints never mix with the old one's.
 */
async function prepareNewRunFolder({ name, outDir, overwrite }: TrainingCommand): Promise<void> {
  const { CHECKPOINTS_DIR, CONFIG_FILE, PREVIEWS_DIR } = await import('@engine/pretrain/trainer');
  const held = [CONFIG_FILE, `${CHECKPOINTS_DIR}/`].filter((entry) => existsSync(path.join(outDir, entry)));
  if (held.length === 0) return;
  if (!overwrite) {
    throw new Error(
      `${outDir} already holds a run (${held.join(', ')}). To continue it: mimir ${name} --resume ${outDir}; ` +
        `to start over in it, deleting its checkpoints, previews and config.json: add --overwrite.`,
    );
  }
  for (const entry of [CHECKPOINTS_DIR, PREVIEWS_DIR, CONFIG_FILE]) {
    await rm(path.join(outDir, entry), { recursive: true, force: true });
  }
}

/** The flags `mimir pretrain` and `mimir finetune` share. */
export interface TrainingFlags extends EngineFlags {
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

/**
 * The run config from the --config file's fields (`fromFile`) in `config`: the dataset flags, then each
 * flag given (the command's own `fields`, then --epochs, --batch and --seed) over them.
 */
export function withTrainingFlags(
  config: Record<string, unknown>,
  fromFile: Record<string, unknown>,
  flags: TrainingFlags & TrainingDatasetFlags,
  fields: Record<string, unknown>,
): Record<string, unknown> {
  const dataset = trainingDatasetFromFlags(flags, fromFile);
  if (dataset) config.dataset = dataset;
  const given = { ...fields, epochs: flags.epochs, batchSize: flags.batch, seed: flags.seed };
  for (const [key, value] of Object.entries(given)) {
    if (value !== undefined) config[key] = value;
  }
  return config;
}

/**
 * The options of TrainingFlags, last in both commands' help. `run`: the config's kind ('pre-training');
 * `writes`: what a run leaves in its folder; `seed`: what the seed seeds.
 */
export function withTrainingRunOptions(command: Command, help: { run: string; writes: string; seed: string }): Command {
  return command
    .option('--epochs <n>', 'epochs (with --resume: raise the total)', positiveInt)
    .option('--batch <n>', 'batch size', positiveInt)
    .option('--seed <n>', help.seed, positiveInt)
    .option('--out <dir>', `output folder for ${help.writes}`)
    .option('--config <file.json>', `a ${help.run} config (JSON); flags override its fields`)
    .option(
      '--resume <dir>',
      'continue the run in <dir> from its newest good checkpoint (or <dir>/checkpoints/<name>: from that one)',
    )
    .option('--overwrite', `start over in an --out folder that holds a run, deleting its ${help.writes}`)
    .option('--json', 'one JSON event per line on stdout, the last one {"type":"done",...} naming the checkpoint')
    .addOption(backendOption());
}

/**
 * Runs `mimir pretrain|finetune` on the engine the flags choose, in --resume's folder or --out's,
 * once `configOf` has built the run's config from the flags.
 */
export async function runTrainingFromFlags(
  name: TrainingCommand['name'],
  flags: TrainingFlags,
  configOf: () => unknown,
): Promise<void> {
  const outDir = flags.resume ?? flags.out;
  if (!outDir) throw new Error('Give --out <dir> for a new run, or --resume <dir> to continue one.');
  const config = configOf();
  await runTrainingCommand({
    name,
    config,
    outDir,
    resume: flags.resume !== undefined,
    overwrite: flags.overwrite === true,
    json: flags.json === true,
    ...(flags.epochs !== undefined ? { epochs: flags.epochs } : {}),
    ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
    torch: torchLaunchFromFlags(flags, configuredEngine(config)),
  });
}
