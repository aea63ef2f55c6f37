import { Option, type Command } from 'commander';
import { RunEngine } from '@shared/engine-choice';
import { isRecord } from '@shared/unknown-value';
import type { TorchLaunch } from '@torch/launch';
import { positiveInt } from './output';

/** `--engine tfjs|torch` and the PyTorch engine's launch flags, shared by `mimir pretrain` and `mimir finetune`. */
export type EngineFlags = Omit<TorchLaunch, 'threads'> & { engine?: 'tfjs' | 'torch' };

export function withEngineOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--engine <engine>',
        "tfjs (TensorFlow.js, this process) or torch (PyTorch: CUDA GPUs, several processes); default: the config file's engine, else tfjs",
      ).choices(['tfjs', 'torch']),
    )
    .option('--nproc <n>', 'torch: processes on this machine (one per GPU, or CPU processes with gloo)', positiveInt)
    .option('--nnodes <n>', 'torch: machines in the run', positiveInt)
    .option('--node-rank <n>', "torch: this machine's rank among them (0 prints the events)", positiveInt)
    .option('--master-addr <host>', 'torch: where node 0 listens (several machines)')
    .option('--master-port <port>', 'torch: the port node 0 listens on', positiveInt)
    .addOption(new Option('--device <device>', 'torch: auto, cpu or cuda').choices(['auto', 'cpu', 'cuda']))
    .addOption(
      new Option(
        '--precision <p>',
        'torch on CUDA: auto (bf16 where supported, else fp16 with loss scaling), fp32, bf16, fp16',
      ).choices(['auto', 'fp32', 'bf16', 'fp16']),
    );
}

const TORCH_ONLY = ['nproc', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'device', 'precision'] as const;

/** The engine a run's config names (`engine: {name: 'torch', nproc, ...}`), if it names a valid one. */
export function configuredEngine(config: unknown): RunEngine | undefined {
  if (!isRecord(config) || config.engine === undefined) return undefined;
  const parsed = RunEngine.safeParse(config.engine);
  // An invalid engine field is left to the config's own validation, which names the problem.
  return parsed.success ? parsed.data : undefined;
}

/**
 * The PyTorch launch settings, or null for the tfjs engine (which refuses the torch-only flags). The
 * engine is --engine's, else the config's; the config's nproc, device and precision apply where no flag
 * is given.
 */
export function torchLaunchFromFlags(
  flags: EngineFlags & { backend?: string },
  configured?: RunEngine,
): TorchLaunch | null {
  if ((flags.engine ?? configured?.name ?? 'tfjs') === 'tfjs') {
    const given = TORCH_ONLY.filter((key) => flags[key] !== undefined);
    if (given.length > 0) {
      const names = given.map((key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
      throw new Error(`${names} ${given.length > 1 ? 'are' : 'is'} for the PyTorch engine: add --engine torch.`);
    }
    return null;
  }
  if (flags.backend !== undefined) {
    throw new Error('--backend chooses a TensorFlow.js backend; the PyTorch engine takes --device cpu|cuda instead.');
  }
  const fromConfig = configured?.name === 'torch' ? configured : undefined;
  return {
    ...(fromConfig ? { nproc: fromConfig.nproc, device: fromConfig.device, precision: fromConfig.precision } : {}),
    ...(flags.nproc !== undefined ? { nproc: flags.nproc } : {}),
    ...(flags.nnodes !== undefined ? { nnodes: flags.nnodes } : {}),
    ...(flags.nodeRank !== undefined ? { nodeRank: flags.nodeRank } : {}),
    ...(flags.masterAddr !== undefined ? { masterAddr: flags.masterAddr } : {}),
    ...(flags.masterPort !== undefined ? { masterPort: flags.masterPort } : {}),
    ...(flags.device !== undefined ? { device: flags.device } : {}),
    ...(flags.precision !== undefined ? { precision: flags.precision } : {}),
  };
}
