import type { RunEventSink } from '../shared/run-events';
import { BACKEND_ENV, readForcedBackend } from '../shared/system';
import { humanRenderer } from './progress-line';

/** The options every training entry point (runPretraining, runFinetuning) takes. */
export interface TrainingRunOptions {
  outDir: string;
  resume: boolean;
  epochsOverride?: number;
  signal: AbortSignal;
  emit: RunEventSink;
}

export interface TrainingCommand {
  /** The subcommand, for the resume hint: `mimir <name> --resume DIR`. */
  name: 'pretrain' | 'finetune';
  outDir: string;
  /** --resume was given (then `epochs` raises the total). */
  resume: boolean;
  epochs?: number;
  json: boolean;
  backend?: string;
  /** tfjs (default): a TensorFlow.js backend is selected in this process; torch: the run happens in Python. */
  engine?: 'tfjs' | 'torch';
  run: (options: TrainingRunOptions) => Promise<unknown>;
}

/**
 * What `mimir pretrain` and `mimir finetune` share once their config is built: the backend, events as
 * JSON lines or a progress bar, Ctrl-C as a cancel (exit 130, with the resume command), and a failure
 * that the run already reported as a `failed` event in --json mode (exit 1). Other errors are rethrown.
 */
export async function runTrainingCommand(command: TrainingCommand): Promise<void> {
  const torch = command.engine === 'torch';
  if (!torch) {
    const { selectBackend } = await import('../engine/backend');
    await selectBackend(readForcedBackend(command.backend, process.env[BACKEND_ENV]), 'cli');
  }
  const isCancel = async (error: unknown): Promise<boolean> => {
    if (torch) return error instanceof (await import('../torch/launch')).TorchRunCancelledError;
    return error instanceof (await import('../engine/pretrain/trainer')).RunCancelledError;
  };
  const render = command.json ? null : humanRenderer();
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    await command.run({
      outDir: command.outDir,
      resume: command.resume,
      ...(command.resume && command.epochs !== undefined ? { epochsOverride: command.epochs } : {}),
      signal: controller.signal,
      emit: (event) => (command.json ? process.stdout.write(`${JSON.stringify(event)}\n`) : render?.(event)),
    });
  } catch (error) {
    if (await isCancel(error)) {
      process.stderr.write(`mimir: cancelled; resume with: mimir ${command.name} --resume ${command.outDir}\n`);
      process.exit(130);
    }
    if (command.json) process.exit(1);
    throw error;
  }
}
