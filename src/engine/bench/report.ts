import { kernelTotals } from './measure';
import type { BenchReport, SideSummary, StepReport } from './run';

/** The bench report as text for a terminal. */
export function formatBenchReport(report: BenchReport, options: { kernels?: number } = {}): string {
  const s = report.settings;
  const lines: string[] = [];
  lines.push(
    `MIMIR bench: ${s.imageSize} px, patch ${s.patchSize}, width ${s.width}, depth ${s.depth}, ${s.heads} heads, ` +
      `decoder ${s.decoderWidth}x${s.decoderDepth}x${s.decoderHeads}, batch ${s.batch}; ` +
      `${s.warmup} warm-up + ${s.repeats} timed steps per side`,
  );
  lines.push(`tfjs backend: ${report.backendDetail}`);
  if (report.torch && 'info' in report.torch) {
    const { info } = report.torch;
    const blas = info.blas.openblas
      ? `OpenBLAS ${info.blas.openblas.core} kernel, ${info.blas.openblas.threads} BLAS threads` +
        (info.blas.OPENBLAS_CORETYPE ? ` (OPENBLAS_CORETYPE=${info.blas.OPENBLAS_CORETYPE})` : '')
      : `${info.blas.libraries.join(', ') || 'no BLAS library seen'}: ${info.blas.note ?? ''}`;
    lines.push(`PyTorch ${info.torch} (python ${info.python}): ${info.threads} threads; ${blas}`);
  } else if (report.torch) {
    lines.push(`PyTorch: ${report.torch.unavailable}`);
  }
  lines.push(`load average at the end: ${report.loadAverage.map((l) => l.toFixed(2)).join(' ')}`);
  lines.push('');
  for (const step of report.steps) lines.push(...formatStep(step, options.kernels ?? 12), '');
  return lines.join('\n');
}

const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;

function sideRow(label: string, side: SideSummary, memory: string): string {
  return (
    `  ${label.padEnd(6)} ${side.imagesPerSecond.toFixed(2).padStart(8)} img/s   first ${ms(side.first.wallMs).padStart(8)}` +
    `   steady ${ms(side.stepMs).padStart(8)} (cpu ${ms(side.cpuMs)})   ${memory}`
  );
}

function formatStep(step: StepReport, kernels: number): string[] {
  const title = step.name === 'pretrain' ? 'MIMIR pre-training step' : 'PGD-AT fine-tuning step';
  const t = step.tfjs;
  const memory = [
    t.peakTensorMiB !== null ? `tensors peak ${t.peakTensorMiB.toFixed(0)} MiB` : null,
    t.wasmHeapMiB !== null ? `wasm heap ${t.wasmHeapMiB.toFixed(0)} MiB` : null,
    `process peak ${t.peakRssMiB.toFixed(0)} MiB`,
    `leaked tensors ${t.leakedTensors}`,
  ]
    .filter(Boolean)
    .join(', ');
  const lines = [`${title} (${step.name})`, sideRow('tfjs', t, memory)];
  if (step.torch) {
    lines.push(sideRow('torch', step.torch, `process peak ${step.torch.peakRssMiB.toFixed(0)} MiB`));
    lines.push(
      `  ratio tfjs/torch: ${step.ratio?.toFixed(2)} (wall, steady median)   cpu-time ratio ${step.cpuRatio?.toFixed(2)}`,
    );
  }
  lines.push(
    `  steady steps tfjs: ${t.steady.map((x) => ms(x.wallMs)).join(', ')}` +
      (step.torch ? `;  torch: ${step.torch.steady.map((x) => ms(x.wallMs)).join(', ')}` : ''),
  );
  if (t.profile && kernels > 0) {
    const p = t.profile;
    lines.push(
      '  profile of one step: ' +
        `${ms(p.wallMs)} wall, ${ms(p.kernelMs)} in kernels, ${ms(p.wallMs - p.kernelMs)} outside them`,
    );
    for (const row of kernelTotals(p.kernels).slice(0, kernels)) {
      lines.push(
        `    ${row.kernel.padEnd(28)} ${row.calls.toString().padStart(7)} calls ${row.totalMs.toFixed(0).padStart(7)} ms ` +
          `${((100 * row.totalMs) / p.wallMs).toFixed(1).padStart(5)}%`,
      );
    }
  }
  return lines;
}
