import type { Command } from 'commander';
import { TORCH_ONLY_ENCODERS } from '@shared/encoder-config';
import { describePreset } from '@shared/model-config';
import { formatModelSummary, presetSummaries } from '@shared/model-summary';
import {
  BACKEND_ENV,
  readForcedBackend,
  type SystemReport,
  type TorchEngineReport,
  type WebgpuReport,
  webgpuAdapterLines,
} from '@shared/system';
import { backendOption, commandAction } from '../output';

function formatTorchEngine(t: TorchEngineReport): string[] {
  if (!t.available) return [`PyTorch engine: unavailable. ${t.reason}`];
  const cuda = t.cuda
    ? `CUDA ${t.cudaVersion ?? '?'}, ${t.devices.length} device${t.devices.length === 1 ? '' : 's'}${t.bf16 ? ', bf16' : ''}`
    : 'no CUDA device (CPU processes)';
  const collectives = [t.nccl ? 'NCCL' : null, t.gloo ? 'gloo' : null].filter(Boolean).join(', ') || 'none';
  return [
    `PyTorch engine: torch ${t.torch} on Python ${t.pythonVersion} (${t.python}); ${cuda}; collectives: ${collectives}`,
    ...t.devices.map((name, i) => `  cuda:${i} ${name}`),
    `  ranks started by: ${t.launcher === 'torchrun' ? 'torchrun' : 'the launcher (own rank environment)'}: ${t.launcherReason}`,
  ];
}

function formatWebgpu(w: WebgpuReport): string[] {
  if (!w.adapter) return [`WebGPU: ${w.detail}`];
  const { features, limits } = webgpuAdapterLines(w.adapter);
  return [`WebGPU: ${w.detail}`, `  features: ${features}`, `  limits: ${limits}`];
}

/** The human form of `mimir doctor`. */
export function formatDoctorReport(report: SystemReport): string {
  const chosen = report.candidates.find((c) => c.backend === report.chosen && c.module === report.chosenModule);
  const forced = report.forcedBy ? ` (forced by ${report.forcedBy === 'flag' ? '--backend' : 'MIMIR_BACKEND'})` : '';
  const width = Math.max(...report.candidates.map((c) => c.module.length));
  const lines = [
    `Backend: ${report.chosen}${forced}, from ${report.chosenModule}: ${chosen?.reason ?? ''}`,
    '',
    'Candidates, in order of preference:',
    ...report.candidates.map(
      (c) => `  ${c.available ? 'yes' : 'no '}  ${c.backend.padEnd(10)} ${c.module.padEnd(width)}  ${c.reason}`,
    ),
    '',
    `GPU: ${report.gpu.summary}`,
    ...(report.gpu.nvidiaDriver ? [`  NVIDIA driver ${report.gpu.nvidiaDriver}`] : []),
    ...report.gpu.devices.map((d) => `  ${d.name}${d.memoryMiB === null ? '' : `, ${d.memoryMiB} MiB`}`),
    ...report.gpu.cudaLibraries.map((lib) => `  ${lib.name}: ${lib.path ?? 'not found'}`),
    ...formatWebgpu(report.webgpu),
    '',
    `Node ${report.node}${report.electron ? `, Electron ${report.electron}` : ''} on ${report.platform} ${report.arch}; ` +
      `${report.cpus} CPUs, ${report.memoryGiB} GiB; TensorFlow.js ${report.tfjsVersion}`,
    ...(report.torchEngine ? ['', ...formatTorchEngine(report.torchEngine)] : []),
  ];
  return lines.join('\n');
}

/** `mimir doctor --models`: every model preset, its encoder, shape, size and the engines that run it. */
export function modelPresetRows(): Record<string, unknown>[] {
  return presetSummaries().map(({ preset, config, summary }) => ({
    preset,
    encoder: config.encoder,
    imageSize: config.imageSize,
    patchSize: config.patchSize,
    width: config.width,
    depth: config.depth,
    heads: config.heads,
    parameters: summary?.parameters ?? null,
    flopsPerImage: summary?.flopsPerImage ?? null,
    engines: TORCH_ONLY_ENCODERS.includes(config.encoder.kind) ? ['torch'] : ['tfjs', 'torch'],
    description: describePreset(preset),
  }));
}

export function formatModelPresets(): string {
  const rows = presetSummaries();
  const width = Math.max(...rows.map((r) => r.preset.length));
  return [
    "Model presets (a 1000-class classifier at the preset's own image size; FLOPs: multiply-adds, as timm counts them):",
    ...rows.map(({ preset, config }) => {
      const shape = `${config.encoder.kind}, width ${config.width}, depth ${config.depth}, ${config.heads} heads, patch ${config.patchSize}`;
      const engines = TORCH_ONLY_ENCODERS.includes(config.encoder.kind) ? 'PyTorch engine only' : 'tfjs and PyTorch';
      return `  ${preset.padEnd(width)}  ${shape}; ${formatModelSummary(config)}; ${engines}`;
    }),
  ].join('\n');
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'show the compute backend this machine gets, every candidate and why it was passed over, and the GPU found',
    )
    .option('--json', 'print one JSON object')
    .option('--models', 'list the model presets instead: encoder, shape, parameters, FLOPs per image, engines')
    .addOption(backendOption())
    .action(
      commandAction(async (options: { json?: boolean; backend?: string; models?: boolean }, json) => {
        if (options.models) {
          const out = json ? JSON.stringify(modelPresetRows(), null, 2) : formatModelPresets();
          process.stdout.write(`${out}\n`);
          return;
        }
        const { selectBackend } = await import('@engine/backend');
        const { torchEngineReport } = await import('@torch/python');
        const report: SystemReport = {
          ...(await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli')),
          torchEngine: await torchEngineReport(),
        };
        process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
      }),
    );
}
