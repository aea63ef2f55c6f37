import { z } from 'zod';

/**
 * Precision of the tfjs engine's own GEMM on webgpu: fp32 (the default: numerics never change
 * silently), or fp16 (tiles staged as f16, f32 accumulation, fp32 results; needs shader-f16).
 */
export const WebgpuPrecision = z.enum(['fp32', 'fp16'], { error: "precision must be 'fp32' or 'fp16'" });
export type WebgpuPrecision = z.infer<typeof WebgpuPrecision>;

/**
 * Which engine trains a run (pre-training and fine-tuning configs' optional `engine`; absent: tfjs).
 * tfjs: TensorFlow.js in the engine process. torch: the PyTorch engine (python/mimir_torch), with
 * `nproc` processes on this machine (one per GPU, or CPU processes with gloo), its device and, on
 * CUDA, its precision.
 */
export const RunEngine = z.discriminatedUnion(
  'name',
  [
    // precision: the engine's GEMM on webgpu (WebgpuPrecision); absent: fp32.
    z.object({ name: z.literal('tfjs'), precision: WebgpuPrecision.optional() }),
    z.object({
      name: z.literal('torch'),
      nproc: z.number().int('nproc must be a whole number').min(1, 'nproc must be >= 1').default(1),
      device: z.enum(['auto', 'cpu', 'cuda'], { error: "device must be 'auto', 'cpu' or 'cuda'" }).default('auto'),
      precision: z
        .enum(['auto', 'fp32', 'bf16', 'fp16'], { error: "precision must be 'auto', 'fp32', 'bf16' or 'fp16'" })
        .default('auto'),
    }),
  ],
  { error: "engine.name must be 'tfjs' or 'torch'" },
);
export type RunEngine = z.infer<typeof RunEngine>;

/**
 * A run config (or a checkpoint's run record) validated as a PyTorch run: one that names no engine
 * (`mimir ... --engine torch` chose it, and its record does not say so) is checked as engine torch, so
 * a PyTorch-only encoder passes.
 */
export function onTorchEngine(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input) || 'engine' in input) return input;
  return { ...input, engine: { name: 'torch' } };
}
