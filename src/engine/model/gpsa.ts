import * as tf from '@tensorflow/tfjs-core';
import { softmaxRows } from '../kernels';

/**
 * Gated positional self-attention (ConViT, d'Ascoli et al. 2021; timm's convit.GPSA), from the
 * query/key projection qk [B*T, 2W] (columns q | k, then head, then dim) and the values v [B*T, W]
 * to the heads' outputs concatenated [B*T, W], before the output projection:
 *
 *   patch = softmax(q k^T / sqrt(d))                       per head
 *   pos   = softmax(rel · posWeight[:, h] + posBias[h])    rel = (dx, dy, dx^2 + dy^2) between tokens
 *   attn  = (1 - sigmoid(gate_h)) patch + sigmoid(gate_h) pos, renormalised over keys (as timm)
 *
 * Differentiable through tfjs's autodiff on every backend (batched products; the GPSA blocks are few).
 */
export interface GpsaShape {
  batch: number;
  tokens: number;
  heads: number;
}

/**
 * Relative positions between the patches `ids` (l = row * grid + column) of a grid x grid grid:
 * [T, T, 3] flat, entry (i, j) = (column_j - column_i, row_j - row_i, squared distance), timm's
 * get_rel_indices for the full grid. Under masking the ids are the visible ones, so the positions
 * are those of the visible tokens on the full grid.
 */
export function relativePositions(ids: ArrayLike<number>, grid: number): Float32Array {
  const t = ids.length;
  const out = new Float32Array(t * t * 3);
  for (let i = 0; i < t; i++) {
    const a = ids[i] ?? 0;
    for (let j = 0; j < t; j++) {
      const b = ids[j] ?? 0;
      const dx = (b % grid) - (a % grid);
      const dy = Math.floor(b / grid) - Math.floor(a / grid);
      const at = (i * t + j) * 3;
      out[at] = dx;
      out[at + 1] = dy;
      out[at + 2] = dx * dx + dy * dy;
    }
  }
  return out;
}

/** Relative positions of every sample's patch ids ([N, T, T, 3]), or of the whole grid in order ([1, L, L, 3]). */
export function relativePositionTensor(ids: ArrayLike<number>[] | undefined, grid: number): tf.Tensor4D {
  if (!ids) {
    const all = Array.from({ length: grid * grid }, (_, i) => i);
    return tf.tensor4d(relativePositions(all, grid), [1, all.length, all.length, 3]);
  }
  const t = ids[0]?.length ?? 0;
  const out = new Float32Array(ids.length * t * t * 3);
  ids.forEach((sample, s) => {
    if (sample.length !== t) throw new Error(`sample ${s} has ${sample.length} patch ids, sample 0 has ${t}`);
    out.set(relativePositions(sample, grid), s * t * t * 3);
  });
  return tf.tensor4d(out, [ids.length, t, t, 3]);
}

/** Split a [B*T, heads*d] matrix into heads [B, heads, T, d]. */
export function toHeads(x: tf.Tensor2D, batch: number, tokens: number, heads: number): tf.Tensor4D {
  const d = x.shape[1] / heads;
  return tf.transpose(tf.reshape(x, [batch, tokens, heads, d]), [0, 2, 1, 3]);
}

/** Heads [B, heads, T, d] back to [B*T, heads*d]. */
export function fromHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, t, d] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b * t, h * d]);
}

export interface GpsaParams {
  /** [3, heads]: the relative position (dx, dy, d^2) to each head's positional score (timm's pos_proj, [in, out]). */
  posWeight: tf.Tensor2D;
  posBias: tf.Tensor1D;
  /** [heads]: sigmoid of it weighs the positional attention against the content attention. */
  gating: tf.Tensor1D;
}

export function gatedPositionalAttention(
  qk: tf.Tensor2D,
  v: tf.Tensor2D,
  rel: tf.Tensor4D,
  p: GpsaParams,
  { batch, tokens, heads }: GpsaShape,
): tf.Tensor2D {
  const width = v.shape[1];
  if (qk.shape[0] !== batch * tokens || qk.shape[1] !== 2 * width || width % heads !== 0) {
    throw new Error(`GPSA: qk [${qk.shape}] and v [${v.shape}] do not fit ${batch} x ${tokens} tokens, ${heads} heads`);
  }
  if (rel.shape[1] !== tokens || (rel.shape[0] !== 1 && rel.shape[0] !== batch)) {
    throw new Error(`GPSA: relative positions [${rel.shape}] do not fit ${batch} samples of ${tokens} tokens`);
  }
  return tf.tidy(() => {
    const d = width / heads;
    const [q, k] = tf.split(toHeads(qk, batch, tokens, 2 * heads), 2, 1) as [tf.Tensor4D, tf.Tensor4D];
    const patch = softmaxRows(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)));
    const r = rel.shape[0];
    const posLogits = tf.add(tf.matMul(tf.reshape(rel, [r * tokens * tokens, 3]), p.posWeight), p.posBias);
    const pos = softmaxRows(tf.transpose(tf.reshape(posLogits, [r, tokens, tokens, heads]), [0, 3, 1, 2]));
    const gate = tf.reshape(tf.sigmoid(p.gating), [1, heads, 1, 1]);
    const mixed = tf.add(tf.mul(tf.sub(1, gate), patch), tf.mul(gate, pos));
    const attn = tf.div(mixed, tf.sum(mixed, -1, true)) as tf.Tensor4D;
    return fromHeads(tf.matMul(attn, toHeads(v, batch, tokens, heads)));
  });
}

/**
 * timm's GPSA.local_init on the engine's layouts: v = identity, and the first floor(sqrt(heads))^2
 * heads' positional weights make head (h1, h2) attend around the offset (h1 - c, h2 - c) of a
 * kernel_size x kernel_size neighbourhood; all positional weights are then scaled by the locality strength.
 * `posWeight` is [3, heads] row-major (modified in place); returns the identity for v [W, W].
 */
export function localInit(
  posWeight: Float32Array,
  heads: number,
  width: number,
  localityStrength: number,
): Float32Array {
  const kernel = Math.floor(Math.sqrt(heads));
  const center = kernel % 2 === 0 ? (kernel - 1) / 2 : Math.floor(kernel / 2);
  for (let h1 = 0; h1 < kernel; h1++) {
    for (let h2 = 0; h2 < kernel; h2++) {
      const head = h1 + kernel * h2;
      posWeight[2 * heads + head] = -1;
      posWeight[heads + head] = 2 * (h1 - center);
      posWeight[head] = 2 * (h2 - center);
    }
  }
  for (let i = 0; i < posWeight.length; i++) posWeight[i] = (posWeight[i] ?? 0) * localityStrength;
  const identity = new Float32Array(width * width);
  for (let i = 0; i < width; i++) identity[i * width + i] = 1;
  return identity;
}
