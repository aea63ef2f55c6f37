import { z } from 'zod';

/** The TensorFlow.js compute backends, fastest first (docs/architecture.md, "Compute backends"). */
export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export const BackendName = z.enum(BACKEND_NAMES);
export type BackendName = z.infer<typeof BackendName>;

/** What a run computed on: a TensorFlow.js backend, or the PyTorch engine (python/mimir_torch). */
export const RUN_BACKENDS = [...BACKEND_NAMES, 'torch'] as const;
export const RunBackend = z.enum(RUN_BACKENDS);
export type RunBackend = z.infer<typeof RunBackend>;

/** One module that could provide a backend, and why it was or was not usable. */
export const BackendCandidate = z.object({
  backend: BackendName,
  module: z.string(),
  available: z.boolean(),
  /** Why it is unavailable, or what it offers when available. Always filled. */
  reason: z.string(),
});
export type BackendCandidate = z.infer<typeof BackendCandidate>;

export const GpuDevice = z.object({
  name: z.string(),
  memoryMiB: z.number().nullable(),
});

export const CudaLibrary = z.object({
  name: z.string(),
  path: z.string().nullable(),
});

export const GpuReport = z.object({
  /** NVIDIA kernel driver version from /proc/driver/nvidia/version or nvidia-smi, if any. */
  nvidiaDriver: z.string().nullable(),
  devices: z.array(GpuDevice),
  /** The CUDA 11.x / cuDNN 8 libraries that @tensorflow/tfjs-node-gpu 4.22 links against. */
  cudaLibraries: z.array(CudaLibrary),
  summary: z.string(),
});
export type GpuReport = z.infer<typeof GpuReport>;

/** What a torch installation offers, as its probe reports it (src/torch/python.ts): CUDA, its devices, bf16, the distributed backends. */
export const torchCapabilities = {
  cuda: z.boolean(),
  cudaVersion: z.string().nullable(),
  devices: z.array(z.string()),
  bf16: z.boolean(),
  nccl: z.boolean(),
  gloo: z.boolean(),
};

/** A WebGPU adapter as Dawn reports it: who made it and the limits the engine's kernels depend on. */
export const WebgpuAdapter = z.object({
  vendor: z.string(),
  architecture: z.string(),
  device: z.string(),
  description: z.string(),
  /** The adapter says it is a fallback (software) adapter. */
  fallback: z.boolean(),
  /** The optional features the kernels can use: shader-f16, subgroups, timestamp-query. */
  features: z.array(z.string()),
  limits: z.object({
    maxComputeWorkgroupStorageSize: z.number(),
    maxComputeInvocationsPerWorkgroup: z.number(),
    maxComputeWorkgroupSizeX: z.number(),
    maxComputeWorkgroupsPerDimension: z.number(),
    maxStorageBufferBindingSize: z.number(),
    maxBufferSize: z.number(),
    maxStorageBuffersPerShaderStage: z.number(),
  }),
});
export type WebgpuAdapter = z.infer<typeof WebgpuAdapter>;

/** The adapter's optional features and key limits in words, for `mimir doctor` and the Compute panel. */
export function webgpuAdapterLines(a: WebgpuAdapter): { features: string; limits: string } {
  const l = a.limits;
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
  return {
    features: a.features.join(', ') || 'none of shader-f16, subgroups, timestamp-query',
    limits:
      `workgroup storage ${l.maxComputeWorkgroupStorageSize} B, ${l.maxComputeInvocationsPerWorkgroup} invocations per workgroup, ` +
      `storage binding ${mib(l.maxStorageBufferBindingSize)}, buffer ${mib(l.maxBufferSize)}, ` +
      `${l.maxStorageBuffersPerShaderStage} storage buffers per stage`,
  };
}

/**
 * What the WebGPU probe found (src/engine/webgpu/adapter.ts): a GPU adapter; a CPU adapter
 * (SwiftShader, lavapipe: passed over unless forced); no adapter; or Dawn failed to load.
 */
export const WebgpuReport = z.object({
  status: z.enum(['gpu', 'cpu-adapter', 'no-adapter', 'dawn-failed']),
  adapter: WebgpuAdapter.nullable(),
  /** One sentence: what was found, or why there is no adapter (with Dawn's error). */
  detail: z.string(),
});
export type WebgpuReport = z.infer<typeof WebgpuReport>;

/** The PyTorch engine as `mimir doctor` finds it: the Python it would run, torch, CUDA, or why it is unavailable. */
export const TorchEngineReport = z.object({
  available: z.boolean(),
  /** The python3 that imports torch (MIMIR_PYTHON, /usr/bin/python3 or python3 on PATH). */
  python: z.string().nullable(),
  pythonVersion: z.string().nullable(),
  torch: z.string().nullable(),
  ...torchCapabilities,
  /** Why it is unavailable and how to install it; '' when available. */
  reason: z.string(),
  /** Who starts the ranks (src/torch/torchrun.ts): torchrun where its probe passes, else the launcher itself; null when unavailable. */
  launcher: z.enum(['torchrun', 'own']).nullable(),
  /** Why that launcher: the torchrun probe's outcome. */
  launcherReason: z.string(),
});
export type TorchEngineReport = z.infer<typeof TorchEngineReport>;

export const SystemReport = z.object({
  chosen: BackendName,
  /** The module that provides the chosen backend, e.g. @tensorflow/tfjs-backend-wasm. */
  chosenModule: z.string(),
  forcedBy: z.enum(['flag', 'env']).nullable(),
  candidates: z.array(BackendCandidate),
  tfjsVersion: z.string(),
  node: z.string(),
  electron: z.string().nullable(),
  platform: z.string(),
  arch: z.string(),
  cpus: z.number().int(),
  memoryGiB: z.number(),
  gpu: GpuReport,
  webgpu: WebgpuReport,
  /** Process that made the report: the CLI itself, or an engine process (utilityProcess / fork). */
  processKind: z.enum(['cli', 'engine-process']),
  pid: z.number().int(),
  /** Filled by `mimir doctor` (probing Python costs a second or two, so other reports leave it out). */
  torchEngine: TorchEngineReport.optional(),
});
export type SystemReport = z.infer<typeof SystemReport>;

/** Environment variable that forces a backend, like the CLI's --backend flag. */
export const BACKEND_ENV = 'MIMIR_BACKEND';

export const ForcedBackend = z.object({ backend: BackendName, forcedBy: z.enum(['flag', 'env']) });
export type ForcedBackend = z.infer<typeof ForcedBackend>;

/**
 * The backend a user forced with --backend (wins) or MIMIR_BACKEND, or null for "the best available".
 * An unknown name is an error, never ignored.
 */
export function readForcedBackend(flag: string | null | undefined, envValue: string | undefined): ForcedBackend | null {
  const [value, forcedBy] = flag ? [flag, 'flag' as const] : [envValue ?? '', 'env' as const];
  if (value === '') return null;
  const parsed = BackendName.safeParse(value);
  if (!parsed.success) {
    const source = forcedBy === 'flag' ? '--backend' : BACKEND_ENV;
    throw new Error(`Unknown backend "${value}" in ${source}; choose one of: ${BACKEND_NAMES.join(', ')}.`);
  }
  return { backend: parsed.data, forcedBy };
}
