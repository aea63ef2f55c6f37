import * as tf from '@tensorflow/tfjs-core';
import {
  attentionApply,
  attentionBackward,
  attentionProbabilities,
  flashAttention,
  flashAttentionGrad,
  softmaxRows,
  wasmKernelsAvailable,
  webgpuKernelsAvailable,
} from '../kernels';

/**
 * The core of multi-head self-attention: from the fused qkv projection [B*T, 3W] (columns ordered
 * (q|k|v, head, dim), timm's layout) to the heads' outputs concatenated [B*T, W], ready for the
 * output projection. softmax(q k^T / sqrt(d)) v per sample and head.
 *
 * Four strategies give the same numbers (to float32 rounding):
 * - `flash`: the engine's fused WGSL kernels on webgpu (webgpu/attention-programs.ts), in the
 *   FlashAttention-2 manner: online softmax over key tiles in workgroup memory, no T x T matrix in
 *   GPU memory; the backward recomputes the probabilities from the forward's logsumexp. The default on webgpu.
 * - `kernels`: the engine's own wasm kernels (src/engine/kernels) read q, k and v of each sample
 *   and head where they lie in qkv and write the output in place: no transposes, slices or
 *   concatenations; each (sample, head)'s softmax runs while its scores are in cache. The default on wasm where they run.
 * - `batched`: batched matMuls over [B, heads, T, d] with tfjs's autodiff. Fast where batched
 *   products are (tfjs-node); the default off wasm.
 * - `sliced`: one plain 2-D matMul per sample and head, with a hand-written backward pass. tfjs-wasm
 *   runs batched or transposed products on a naive kernel (1-2 GFLOP/s against about 20 for a plain
 *   2-D product through XNNPACK), and each (sample, head) slice of scores fits in cache. The heads
 *   are laid out once per call by two 4-D transposes (rank-5 transposes are slow on wasm) and read
 *   back, and the slices are made from the host copy (tf.slice on wasm copies the whole input each
 *   time). The backward pass reuses the forward's attention probabilities when they fit in
 *   attentionSettings.savedProbabilitiesBudget floats, else recomputes them. The default on wasm.
 */
export type AttentionStrategy = 'auto' | 'flash' | 'kernels' | 'sliced' | 'batched';

export interface AttentionShape {
  batch: number;
  tokens: number;
  heads: number;
}

export function resolveAttentionStrategy(strategy: AttentionStrategy): Exclude<AttentionStrategy, 'auto'> {
  if (strategy !== 'auto') return strategy;
  if (webgpuKernelsAvailable()) return 'flash';
  if (tf.getBackend() !== 'wasm') return 'batched';
  return wasmKernelsAvailable() ? 'kernels' : 'sliced';
}

export function multiHeadAttention(
  qkv: tf.Tensor2D,
  shape: AttentionShape,
  strategy: AttentionStrategy = 'auto',
): tf.Tensor2D {
  const { batch, tokens, heads } = shape;
  const width3 = qkv.shape[1];
  if (qkv.shape[0] !== batch * tokens || width3 % (3 * heads) !== 0) {
    throw new Error(`qkv of shape [${qkv.shape}] does not fit batch ${batch}, ${tokens} tokens, ${heads} heads`);
  }
  switch (resolveAttentionStrategy(strategy)) {
    case 'flash':
      return attentionFlash(qkv, shape);
    case 'kernels':
      return attentionWithKernels(qkv, shape);
    case 'sliced':
      return attentionSliced(qkv, shape);
    case 'batched':
      return attentionBatched(qkv, shape);
  }
}

function attentionWithKernels(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  const attrs = { batch, heads };
  const keepProbabilities = keepsProbabilities(batch, heads, tokens);
  const op = tf.customGrad(
    (qkvIn: tf.Tensor | ((t: tf.Tensor[]) => void), saveIn: tf.Tensor | ((t: tf.Tensor[]) => void)) => {
      const input = qkvIn as tf.Tensor2D;
      const save = saveIn as (t: tf.Tensor[]) => void;
      const probabilities = attentionProbabilities(input, attrs);
      const value = attentionApply(probabilities, input, attrs);
      save(keepProbabilities ? [input, probabilities] : [input]);
      const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedQkv = saved[0] as tf.Tensor2D | undefined;
        if (!savedQkv) throw new Error('attention: saved qkv missing');
        const p = (saved[1] as tf.Tensor2D | undefined) ?? attentionProbabilities(savedQkv, attrs);
        return attentionBackward(p, savedQkv, dy as tf.Tensor2D, attrs);
      };
      return { value, gradFunc };
    },
  );
  return op(qkv) as tf.Tensor2D;
}

function attentionFlash(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  if (!webgpuKernelsAvailable())
    throw new Error(`attention strategy 'flash' needs the webgpu backend, not ${tf.getBackend()}`);
  const attrs = { batch, heads };
  const width = qkv.shape[1] / 3;
  const op = tf.customGrad(
    (qkvIn: tf.Tensor | ((t: tf.Tensor[]) => void), saveIn: tf.Tensor | ((t: tf.Tensor[]) => void)) => {
      const input = qkvIn as tf.Tensor2D;
      const save = saveIn as (t: tf.Tensor[]) => void;
      // [out | logsumexp]: the backward reads both from this one tensor.
      const packed = flashAttention(input, attrs);
      save([input, packed]);
      const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [savedQkv, savedPacked] = saved as [tf.Tensor2D | undefined, tf.Tensor2D | undefined];
        if (!savedQkv || !savedPacked) throw new Error('attention: saved qkv or output missing');
        return flashAttentionGrad(savedQkv, savedPacked, dy as tf.Tensor2D, attrs);
      };
      return { value: tf.slice(packed, [0, 0], [batch * tokens, width]), gradFunc };
    },
  );
  return op(qkv) as tf.Tensor2D;
}

function attentionBatched(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  return tf.tidy(() => {
    const width = qkv.shape[1] / 3;
    const headDim = width / heads;
    const all = tf.transpose(tf.reshape(qkv, [batch, tokens, 3 * heads, headDim]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(all, 3, 1) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(headDim)), k, false, true);
    const out = tf.matMul(softmaxRows(scores), v);
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * tokens, width]);
  });
}

export const attentionSettings = {
  /**
   * The sliced strategy keeps the attention probabilities of the forward pass for the backward
   * pass (instead of recomputing them) when a gradient is being recorded and they take at most
   * this many floats per attention call (64 Mi floats = 256 MiB).
   */
  savedProbabilitiesBudget: 64 * 1024 * 1024,
};

/** Whether an attention call keeps its probabilities for the backward pass: while recording, within the budget. */
function keepsProbabilities(batch: number, heads: number, tokens: number): boolean {
  const recording = tf.engine().state.gradientDepth > 0;
  return recording && batch * heads * tokens * tokens <= attentionSettings.savedProbabilitiesBudget;
}

function attentionSliced(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  const width = qkv.shape[1] / 3;
  const d = headDimOf(width, heads);
  const T = tokens;
  const block = T * d;
  const slot = (b: number, j: number) => (b * 3 * heads + j) * block;
  const scaleData = new Float32Array(3 * width).fill(1);
  scaleData.fill(1 / Math.sqrt(d), 0, width);
  const keepProbabilities = keepsProbabilities(batch, heads, T);

  // XNNPACK (tfjs-wasm's fast matMul) packs the second operand anew on every call, so every
  // product below has the small [T, d] or [d, T] operand second and the [T, T] one first.
  const op = tf.customGrad(
    (qkvIn: tf.Tensor | ((t: tf.Tensor[]) => void), saveIn: tf.Tensor | ((t: tf.Tensor[]) => void)) => {
      const input = qkvIn as tf.Tensor2D;
      const save = saveIn as (t: tf.Tensor[]) => void;
      // q is pre-scaled by 1/sqrt(d); `rows` holds [T, d] blocks (q, k, v per sample and head), `cols` their transposes.
      const scaled = tf.reshape(tf.mul(input, tf.tensor1d(scaleData)), [batch, T, 3 * heads, d]);
      const rows = tf.transpose(scaled, [0, 2, 1, 3]).dataSync() as Float32Array;
      const cols = tf.transpose(scaled, [0, 2, 3, 1]).dataSync() as Float32Array;
      const row = (off: number) => tf.tensor2d(rows.subarray(off, off + block), [T, d]);
      const col = (off: number) => tf.tensor2d(cols.subarray(off, off + block), [d, T]);
      const probabilities = (b: number, h: number) => softmaxRows(tf.matMul(row(slot(b, h)), col(slot(b, heads + h))));

      const outs: tf.Tensor2D[] = [];
      const kept: tf.Tensor2D[] = [];
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const [o, p] = tf.tidy(() => {
            const prob = probabilities(b, h);
            return [tf.matMul(prob, row(slot(b, 2 * heads + h))), prob];
          });
          outs.push(o as tf.Tensor2D);
          if (keepProbabilities) kept.push(p as tf.Tensor2D);
          else p.dispose();
        }
      }
      const value = mergeHeads(tf.stack(outs) as tf.Tensor3D, batch, T, heads, d);
      save([value, ...kept]);

      const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const out = saved[0];
        if (!out) throw new Error('attention: saved output missing');
        // Softmax backward needs rowsum(dP * P) = rowsum(dO * O) per query (as in FlashAttention).
        const dot = tf.sum(tf.reshape(tf.mul(dy, out), [batch, T, heads, d]), -1);
        const rowDots = tf.transpose(dot, [0, 2, 1]).dataSync() as Float32Array; // [B, heads, T]
        const dRows = tf.transpose(tf.reshape(dy, [batch, T, heads, d]), [0, 2, 1, 3]).dataSync() as Float32Array;
        const dQ: tf.Tensor2D[] = [];
        const dK: tf.Tensor2D[] = [];
        const dV: tf.Tensor2D[] = [];
        for (let b = 0; b < batch; b++) {
          for (let h = 0; h < heads; h++) {
            const i = b * heads + h;
            const grads = tf.tidy(() => {
              const p = saved[1 + i] ?? probabilities(b, h);
              const dOut = tf.tensor2d(dRows.subarray(i * block, (i + 1) * block), [T, d]);
              const gv = tf.matMul(tf.transpose(p), dOut); // P^T dO
              const dp = tf.matMul(dOut, col(slot(b, 2 * heads + h))); // dO v^T
              const ds = tf.mul(p, tf.sub(dp, tf.tensor2d(rowDots.subarray(i * T, (i + 1) * T), [T, 1])));
              const gq = tf.matMul(ds, row(slot(b, heads + h))); // dS k  (for the scaled q)
              const gk = tf.matMul(tf.transpose(ds), row(slot(b, h))); // dS^T q
              return [gq, gk, gv];
            });
            dQ.push(grads[0] as tf.Tensor2D);
            dK.push(grads[1] as tf.Tensor2D);
            dV.push(grads[2] as tf.Tensor2D);
          }
        }
        const parts = [dQ, dK, dV].map((g) =>
          tf.reshape(mergeHeads(tf.stack(g) as tf.Tensor3D, batch, T, heads, d), [batch, T, width]),
        );
        return tf.mul(tf.reshape(tf.concat(parts, 2), [batch * T, 3 * width]), tf.tensor1d(scaleData));
      };
      return { value, gradFunc };
    },
  );
  return op(qkv) as tf.Tensor2D;
}

/** Per-(sample, head) blocks [B*heads, T, d] to [B*T, heads*d]. */
function mergeHeads(stacked: tf.Tensor3D, batch: number, tokens: number, heads: number, d: number): tf.Tensor2D {
  const perHead = tf.reshape(stacked, [batch, heads, tokens, d]);
  return tf.reshape(tf.transpose(perHead, [0, 2, 1, 3]), [batch * tokens, heads * d]);
}

function headDimOf(width: number, heads: number): number {
  if (width % heads !== 0) throw new Error(`width ${width} is not divisible by ${heads} heads`);
  return width / heads;
}
