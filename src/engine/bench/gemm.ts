import * as tf from '@tensorflow/tfjs-core';
import { gemm } from '../kernels';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../webgpu/kernels';
import { describeGemmVariant, kernelVariants } from '../webgpu/variants';

/** One product size's speed on the active backend through the engine's gemm (its own kernel on wasm and webgpu). */
export interface GemmTiming {
  m: number;
  n: number;
  k: number;
  backend: string;
  /** On webgpu: the GEMM shader that ran (its key names the variant) and what it is; null elsewhere. */
  variant: { shader: string; description: string } | null;
  msPerProduct: number;
  tflops: number;
}

/** "MxNxK" -> [m, n, k], or an error that says what a size looks like. */
export function parseGemmSize(text: string): [number, number, number] {
  const parts = text.trim().toLowerCase().split('x').map(Number);
  if (parts.length !== 3 || !parts.every((p) => Number.isInteger(p) && p > 0)) {
    throw new Error(`GEMM size "${text}" is not MxNxK with three positive integers, e.g. 4096x4096x4096`);
  }
  return parts as [number, number, number];
}

/**
 * Times `repeats` products of a random [m, k] by [k, n] after one untimed product (shader compile,
 * uploads). The products are queued back to back; the clock stops when one element of the last one
 * is read, which waits for the whole queue on webgpu and moves 4 bytes, not the product.
 */
export async function timeGemm(m: number, n: number, k: number, repeats = 10): Promise<GemmTiming> {
  const a = tf.randomUniform([m, k], -1, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomUniform([k, n], -1, 1, 'float32', 2) as tf.Tensor2D;
  const firstElement = async (t: tf.Tensor2D) => {
    const corner = tf.slice(t, [0, 0], [1, 1]);
    await corner.data();
    corner.dispose();
  };
  try {
    const webgpu = tf.getBackend() === 'webgpu';
    if (webgpu) clearDispatchedWebgpuShaders();
    const warm = gemm(a, b);
    await firstElement(warm);
    warm.dispose();
    const shader = webgpu ? dispatchedWebgpuShaders().find((key) => key.startsWith('mimirGemm')) : undefined;
    const variant = shader ? { shader, description: describeGemmVariant(kernelVariants()) } : null;
    const start = performance.now();
    let last: tf.Tensor2D | null = null;
    for (let i = 0; i < repeats; i++) {
      const product = gemm(a, b);
      last?.dispose();
      last = product;
    }
    if (last) {
      await firstElement(last);
      last.dispose();
    }
    const msPerProduct = (performance.now() - start) / repeats;
    return { m, n, k, backend: tf.getBackend(), variant, msPerProduct, tflops: (2 * m * n * k) / (msPerProduct * 1e9) };
  } finally {
    tf.dispose([a, b]);
  }
}

export function formatGemmTiming(t: GemmTiming): string {
  const variant = t.variant ? ` (${t.variant.shader}: ${t.variant.description})` : '';
  return `GEMM ${t.m}x${t.n}x${t.k} on ${t.backend}${variant}: ${t.msPerProduct.toFixed(2)} ms per product, ${t.tflops.toFixed(3)} TFLOP/s`;
}
