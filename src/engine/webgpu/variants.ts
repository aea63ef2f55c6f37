import type { RunEngine, WebgpuPrecision } from '@shared/engine-choice';

/**
 * Which variants of the engine's WGSL kernels run: chosen from the WebGPU device's features and the
 * run's settings. Subgroup reductions are used wherever the device has `subgroups` (same fp32
 * numerics, fewer barriers) unless turned off; the GEMM stages its tiles as f16 only when the run
 * opted in with precision fp16, which needs `shader-f16`.
 */
export interface KernelVariants {
  /** LayerNorm's row statistics and gradient sums by subgroupAdd instead of a workgroup-memory tree. */
  subgroups: boolean;
  /** GEMM tiles staged as f16 in workgroup memory, accumulated in f32, fp32 results. */
  gemmF16: boolean;
}

export interface KernelSettings {
  precision: WebgpuPrecision;
  /** false: the plain reductions even where the device has subgroups. */
  subgroups: boolean;
}

const state: { features: ReadonlySet<string>; settings: KernelSettings } = {
  features: new Set(),
  settings: { precision: 'fp32', subgroups: true },
};

/** Records the features the webgpu backend's device was created with (adapter.ts). */
export function setWebgpuDeviceFeatures(features: Iterable<string>): void {
  state.features = new Set(features);
}

export function setWebgpuKernelSettings(settings: Partial<KernelSettings>): void {
  state.settings = { ...state.settings, ...settings };
}

export function webgpuKernelSettings(): KernelSettings {
  return { ...state.settings };
}

function requireF16(precision: WebgpuPrecision): void {
  if (precision === 'fp16' && !state.features.has('shader-f16')) {
    throw new Error(
      "precision fp16 needs a WebGPU device with the 'shader-f16' feature, and this one lacks it: use precision fp32",
    );
  }
}

/** The variants to run now; precision fp16 on a device without shader-f16 is an error, never a silent fp32. */
export function kernelVariants(): KernelVariants {
  const { precision, subgroups } = state.settings;
  requireF16(precision);
  return { subgroups: subgroups && state.features.has('subgroups'), gemmF16: precision === 'fp16' };
}

export function describeGemmVariant(v: KernelVariants): string {
  return v.gemmF16 ? 'f16 tiles, f32 accumulation' : 'fp32';
}

/** One line for doctor and bench: which variants run. */
export function describeKernelVariants(v: KernelVariants): string {
  return `GEMM ${describeGemmVariant(v)}; reductions by ${v.subgroups ? 'subgroups' : 'workgroup memory'}`;
}

/**
 * tfjs writes its own preamble before a program's code, but WGSL wants `enable` directives before
 * any declaration: moves them to the top (the device's createShaderModule goes through this).
 */
export function hoistEnableDirectives(code: string): string {
  const directives = new Set<string>();
  const rest = code.replace(/^[ \t]*enable[ \t]+[a-z0-9_, \t]+;[ \t]*$/gm, (line) => {
    directives.add(line.trim());
    return '';
  });
  return directives.size === 0 ? code : `${[...directives].join('\n')}\n${rest}`;
}

/**
 * Sets the precision of the engine's GEMM on webgpu for a run or bench on `backend`: fp16 only on
 * webgpu and where the device has shader-f16, refused otherwise with what to change.
 */
export function useWebgpuPrecision(precision: WebgpuPrecision, backend: string): void {
  if (precision === 'fp16' && backend !== 'webgpu') {
    throw new Error(
      `precision fp16 applies to the webgpu backend only, and ${backend} was chosen: choose webgpu (--backend webgpu) or precision fp32`,
    );
  }
  // Checked before it is set: a refused fp16 must not stay behind for the process's next GEMM.
  if (backend === 'webgpu') requireF16(precision);
  setWebgpuKernelSettings({ precision });
}

/** A run's tfjs precision: its config's engine.precision where the engine is tfjs, else fp32. */
export function runPrecision(engine: RunEngine | undefined): WebgpuPrecision {
  return engine?.name === 'tfjs' ? (engine.precision ?? 'fp32') : 'fp32';
}
