import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { writeFileAtomic } from '@engine/io/atomic-file';
import { fail, positiveInt } from '../output';

/**
 * `mimir launch --slurm`: an sbatch script that runs a `mimir pretrain|finetune --engine torch` command
 * on several machines of a Slurm cluster: one task per node, each `mimir` starting --gpus-per-node
 * ranks, node 0 (the first host of the allocation) as the rendezvous, the node rank from
 * SLURM_NODEID. Node 0 prints the run's events; the output folder must be on a shared filesystem.
 */

interface LaunchOptions {
  slurm?: boolean;
  nodes: number;
  gpusPerNode: number;
  partition?: string;
  time?: string;
  jobName: string;
  masterPort: number;
  output: string;
}

const OWN_FLAGS = ['--engine', '--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

/** One shell word, single-quoted. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function defaultMimir(): string {
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mimir.mjs');
  return `${shellQuote(process.execPath)} ${shellQuote(bin)}`;
}

export function sbatchScript(args: string[], options: LaunchOptions): string {
  const [command] = args;
  if (command !== 'pretrain' && command !== 'finetune') {
    throw new Error(`mimir launch runs 'pretrain' or 'finetune' on the PyTorch engine; got '${command ?? ''}'.`);
  }
  const own = args.filter((arg) => OWN_FLAGS.some((flag) => arg === flag || arg.startsWith(`${flag}=`)));
  if (own.length > 0) {
    throw new Error(`${own.join(', ')}: mimir launch sets the engine and the ranks itself; leave them out.`);
  }
  const lines = [
    '#!/bin/bash',
    `#SBATCH --job-name=${options.jobName}`,
    `#SBATCH --nodes=${options.nodes}`,
    '#SBATCH --ntasks-per-node=1',
    ...(options.gpusPerNode > 0 ? [`#SBATCH --gpus-per-node=${options.gpusPerNode}`] : []),
    ...(options.partition ? [`#SBATCH --partition=${options.partition}`] : []),
    ...(options.time ? [`#SBATCH --time=${options.time}`] : []),
    `#SBATCH --output=${options.jobName}-%j.out`,
    '# Written by `mimir launch --slurm`. Node 0 prints the run events; other nodes print only their logs.',
    'set -euo pipefail',
    `MIMIR_CMD=\${MIMIR_CMD:-${shellQuote(defaultMimir())}}`,
    // sed reads to the end: `head -n 1` would close the pipe early, and under pipefail scontrol's SIGPIPE
    // (a long node list) would abort the job.
    'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
    `MASTER_PORT=\${MASTER_PORT:-${options.masterPort}}`,
    'export MIMIR_CMD MASTER_ADDR MASTER_PORT',
    `srun --ntasks-per-node=1 bash -c 'exec $MIMIR_CMD ${args.map(shellQuote).join(' ').replace(/'/g, `'\\''`)} ` +
      `--engine torch --nproc ${Math.max(options.gpusPerNode, 1)} --nnodes ${options.nodes} ` +
      `--node-rank "$SLURM_NODEID" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT"'`,
    '',
  ];
  return lines.join('\n');
}

export function registerLaunch(program: Command): void {
  program
    .command('launch')
    .description(
      'write an sbatch script that runs `mimir pretrain|finetune ... --engine torch` on several machines of a Slurm cluster',
    )
    .option('--slurm', 'write a Slurm sbatch script (the only launcher so far)')
    .option('--nodes <n>', 'machines', positiveInt, 1)
    .option('--gpus-per-node <n>', 'GPUs (ranks) per machine; 0: one CPU rank per machine', positiveInt, 1)
    .option('--partition <name>', 'Slurm partition')
    .option('--time <limit>', 'Slurm time limit, e.g. 24:00:00')
    .option('--job-name <name>', 'Slurm job name', 'mimir')
    .option('--master-port <port>', "node 0's rendezvous port", positiveInt, 29500)
    .option('--output <file>', 'where to write the script', 'mimir.sbatch')
    .argument(
      '<mimir-args...>',
      'after --: the pretrain or finetune command line, e.g. -- pretrain --model vit-s --out runs/a',
    )
    .action(async (args: string[], options: LaunchOptions) => {
      try {
        if (!options.slurm) throw new Error('Give --slurm: mimir launch writes Slurm sbatch scripts.');
        await writeFileAtomic(options.output, sbatchScript(args, options));
        await chmod(options.output, 0o755);
        process.stdout.write(`wrote ${options.output}: submit it with sbatch ${options.output}\n`);
      } catch (error) {
        fail(error, false);
      }
    });
}
