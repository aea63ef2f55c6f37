import type { Run, RunStatus } from '@shared/store-types';
import { isRecord } from '@shared/unknown-value';

/** What the screens show about a run, read from its stored config (defensively: older runs may differ). */

function field(config: Record<string, unknown>, key: string): unknown {
  return config[key];
}

/** pretrain: mae / adv-mae / mimir; finetune: its method (pgd-at, ...); evaluate: its attacks; landscape: its loss. */
export function runMode(run: Run): string {
  if (run.kind === 'evaluate') {
    const attacks = field(run.config, 'attacks');
    return Array.isArray(attacks)
      ? attacks.map((item) => (isRecord(item) && typeof item.attack === 'string' ? item.attack : '?')).join(', ')
      : '';
  }
  const mode = field(run.config, run.kind === 'finetune' ? 'method' : run.kind === 'landscape' ? 'loss' : 'mode');
  return typeof mode === 'string' ? mode : '';
}

export function runModel(run: Run): string {
  if (run.kind === 'finetune') {
    const source = field(run.config, 'source');
    if (isRecord(source) && source.kind === 'pretrained') return 'pre-trained encoder';
    if (isRecord(source)) return modelLabel(source);
  }
  return modelLabel(run.config);
}

export function modelLabel(config: Record<string, unknown>): string {
  const model = field(config, 'model');
  if (typeof model === 'string') return model;
  if (isRecord(model)) {
    const { width, depth, patchSize } = model;
    return `custom ${String(width)}×${String(depth)}${typeof patchSize === 'number' ? ` p${patchSize}` : ''}`;
  }
  return '';
}

export function runDataset(run: Run): string {
  return datasetLabel(run.config);
}

export function datasetLabel(config: Record<string, unknown>): string {
  const dataset = field(config, 'dataset');
  if (!isRecord(dataset)) return '';
  const kind = typeof dataset.kind === 'string' ? dataset.kind : '?';
  const parts = [kind];
  if (typeof dataset.size === 'number') parts.push(`${dataset.size.toLocaleString('en-US')}`);
  if (typeof dataset.imageSize === 'number') parts.push(`${dataset.imageSize}px`);
  return parts.join(' · ');
}

export const ACTIVE_STATUSES: readonly RunStatus[] = ['queued', 'running'];
export const RESUMABLE_STATUSES: readonly RunStatus[] = ['interrupted', 'failed', 'cancelled'];

export function canCancel(run: Run): boolean {
  return ACTIVE_STATUSES.includes(run.status);
}

export function canResume(run: Run): boolean {
  return RESUMABLE_STATUSES.includes(run.status) && run.kind === 'pretrain' && !failedOnConfig(run);
}

/** The run failed because of its config or data: resuming would fail again; a copy is edited instead. */
export function failedOnConfig(run: Run): boolean {
  return run.status === 'failed' && run.errorCause === 'config';
}

export function canDelete(run: Run): boolean {
  return !ACTIVE_STATUSES.includes(run.status);
}

/** Fraction of the steps done, 0-1, or null when the total is unknown. */
export function runProgress(run: Run): number | null {
  if (run.status === 'done') return 1;
  if (!run.totalSteps || run.step === null) return null;
  return Math.min(1, Math.max(0, run.step / run.totalSteps));
}

/** Seconds the run ran (to now while it runs). */
export function runElapsed(run: Run, now: number): number | null {
  if (run.startedAt === null) return null;
  const end = run.endedAt ?? (run.status === 'running' ? now : run.lastEventAt);
  return end === null ? null : (end - run.startedAt) / 1000;
}

const TFJS_BACKENDS: Record<string, string> = { wasm: 'wasm', cpu: 'cpu', tensorflow: 'tfjs-node', webgpu: 'WebGPU' };

/** The run's engine, processes, devices and precision: "PyTorch · 2 processes · cpu · fp32", "TensorFlow.js · wasm". */
export function runCompute(run: Run): string {
  const engine = run.engine;
  if (engine) {
    const processes = `${engine.worldSize} process${engine.worldSize === 1 ? '' : 'es'}`;
    const names = [...new Set(engine.devices)];
    const devices =
      engine.device === 'cuda'
        ? `cuda (${names.map((name) => `${engine.devices.filter((d) => d === name).length} × ${name}`).join(', ')})`
        : 'cpu';
    return `PyTorch · ${processes} · ${devices} · ${engine.precision}`;
  }
  if (run.backend === 'torch') return 'PyTorch';
  if (run.backend) return `TensorFlow.js · ${TFJS_BACKENDS[run.backend] ?? run.backend}`;
  return '';
}
