import { Option, type Command } from 'commander';
import { WebgpuPrecision } from '@shared/engine-choice';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { backendOption, positiveInt, commandAction } from '../output';

interface BenchCliOptions {
  steps: string;
  batch?: number;
  width?: number;
  depth?: number;
  heads?: number;
  imageSize?: number;
  patchSize?: number;
  decoderWidth?: number;
  decoderDepth?: number;
  decoderHeads?: number;
  pgdSteps?: number;
  attackSteps?: number;
  repeats?: number;
  warmup?: number;
  threads?: number;
  seed?: number;
  compareTorch?: boolean;
  engine?: 'tfjs' | 'torch';
  profile?: boolean;
  kernels?: number;
  wasmThreads?: number;
  json?: boolean;
  backend?: string;
  gemm?: string;
  precision?: string;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'time a MIMIR pre-training step and a PGD-AT fine-tuning step (images/s, first and steady step, memory); ' +
        'with --compare-torch, the same steps in PyTorch side by side',
    )
    .option('--steps <list>', 'comma-separated: pretrain, pgdat', 'pretrain,pgdat')
    .option('--batch <n>', 'batch size (default 32)', positiveInt)
    .option('--image-size <px>', 'image side (default 32)', positiveInt)
    .option('--patch-size <px>', 'patch side (default 2)', positiveInt)
    .option('--width <n>', 'encoder width (default 192)', positiveInt)
    .option('--depth <n>', 'encoder blocks (default 2)', positiveInt)
    .option('--heads <n>', 'encoder heads (default 3)', positiveInt)
    .option('--decoder-width <n>', 'decoder width (default 128)', positiveInt)
    .option('--decoder-depth <n>', 'decoder blocks (default 2)', positiveInt)
    .option('--decoder-heads <n>', 'decoder heads (default 16)', positiveInt)
    .option('--attack-steps <n>', 'attack steps of the MIMIR step (default 1)', positiveInt)
    .option('--pgd-steps <n>', 'PGD steps of the PGD-AT step (default 10)', positiveInt)
    .option('--repeats <n>', 'timed steady steps per side (default 3)', positiveInt)
    .option('--warmup <n>', 'warm-up steps per side, the first reported (default 1)', positiveInt)
    .option('--threads <n>', "PyTorch's threads (default 2)", positiveInt)
    .option('--seed <n>', 'seed (default 0)', positiveInt)
    .option(
      '--compare-torch',
      'run the same steps on the PyTorch engine (python/mimir_torch, python3-torch) alternately and print the ratio',
    )
    .addOption(
      new Option(
        '--engine <engine>',
        "torch: the PyTorch engine's steps next to the tfjs engine's (as --compare-torch)",
      ).choices(['tfjs', 'torch']),
    )
    .option('--profile', 'profile one extra tfjs step per kind: per-kernel times and peak tensor memory')
    .option('--kernels <n>', 'kernel rows to print with --profile (default 12)', positiveInt)
    .option(
      '--wasm-threads <n>',
      "threads of the engine's wasm kernels (default: one per core; 1 keeps tfjs-wasm's single-threaded build; sets MIMIR_WASM_THREADS)",
      positiveInt,
    )
    .option(
      '--gemm <sizes>',
      "time only the engine's GEMM instead of the steps: comma-separated MxNxK sizes, e.g. 4096x4096x4096 (TFLOP/s)",
    )
    .addOption(
      new Option(
        '--precision <precision>',
        "the engine's GEMM on webgpu: fp32 (default), or fp16 (tiles staged as f16, f32 accumulation; needs shader-f16)",
      ).choices(['fp32', 'fp16']),
    )
    .option('--json', 'print the whole report as one JSON object')
    .addOption(backendOption())
    .action(
      commandAction(async (options: BenchCliOptions, json) => {
        const settings: Record<string, unknown> = {
          steps: options.steps
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        };
        for (const key of [
          'batch',
          'imageSize',
          'patchSize',
          'width',
          'depth',
          'heads',
          'decoderWidth',
          'decoderDepth',
          'decoderHeads',
          'attackSteps',
          'pgdSteps',
          'repeats',
          'warmup',
          'threads',
          'seed',
        ] as const) {
          if (options[key] !== undefined) settings[key] = options[key];
        }
        if (options.wasmThreads !== undefined) process.env.MIMIR_WASM_THREADS = String(options.wasmThreads);
        const { selectBackend } = await import('@engine/backend');
        const { BenchSettings, formatBenchReport, runBench } = await import('@engine/bench');
        const parsed = BenchSettings.safeParse(settings);
        if (!parsed.success) {
          throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || 'settings'}: ${i.message}`).join('; '));
        }
        const backend = await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        if (options.precision !== undefined) {
          const { useWebgpuPrecision } = await import('@engine/webgpu/variants');
          useWebgpuPrecision(WebgpuPrecision.parse(options.precision), backend.chosen);
        }
        if (options.gemm !== undefined) {
          const { formatGemmTiming, parseGemmSize, timeGemm } = await import('@engine/bench');
          const timings = [];
          for (const [m, n, k] of options.gemm.split(',').map(parseGemmSize)) {
            const timing = await timeGemm(m, n, k, parsed.data.repeats);
            timings.push(timing);
            if (!json) process.stdout.write(`${formatGemmTiming(timing)}\n`);
          }
          if (json) process.stdout.write(`${JSON.stringify({ gemm: timings })}\n`);
          return;
        }
        const report = await runBench(parsed.data, {
          compareTorch: options.compareTorch === true || options.engine === 'torch',
          profile: options.profile === true,
          log: json ? undefined : (line) => process.stderr.write(`${line}\n`),
        });
        if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else process.stdout.write(`${formatBenchReport(report, { kernels: options.kernels ?? 12 })}\n`);
      }),
    );
}
