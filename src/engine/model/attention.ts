import * as tf from '@tensorflow/tfjs-core';

/**
 * The core of multi-head self-attention: from the fused qkv projection [B*T, 3W] (columns ordered
 * (q|k|v, head, dim), timm's layout) to the heads' outputs concatenated [B*T, W], ready for the
 * output projection. softmax(q k^T / sqrt(d)) v per sample and head.
 *
 * Two strategies give the same numbers:
 * - `batched`: batched matMuls over [B, heads, T, d] with tfjs's autodiff. Fast where batched
 *   products are (tfjs-node); the default off wasm.
 * - `sliced`: one plain 2-D matMul per sample and head, with a hand-written backward pass. tfjs-wasm
 *   runs batched or transposed products on a naive kernel (1-2 GFLOP/s against about 20 for a plain
 *   2-D product through XNNPACK), and each (sample, head) slice of scores fits in cache. The heads
 *   are laid out once per call by two 4-D transposes (rank-5 transposes are slow on wasm) and read
 *   back, the slices are made from the host copy (tf.slice on wasm copies the whole input each time),
 *   and the backward pass recomputes the attention probabilities instead of keeping B*heads*T*T floats.
 *   The default on wasm.
 */
export type AttentionStrategy = 'auto' | 'sliced' | 'batched';

export interface AttentionShape {
  batch: number;
  tokens: number;
  heads: number;
}

export function resolveAttentionStrategy(strategy: AttentionStrategy): 'sliced' | 'batched' {
  if (strategy !== 'auto') return strategy;
  return tf.getBackend() === 'wasm' ? 'sliced' : 'batched';
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
  return resolveAttentionStrategy(strategy) === 'sliced' ? attentionSliced(qkv, shape) : attentionBatched(qkv, shape);
}

function attentionBatched(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  return tf.tidy(() => {
    const width = qkv.shape[1] / 3;
    const headDim = width / heads;
    const all = tf.transpose(tf.reshape(qkv, [batch, tokens, 3 * heads, headDim]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(all, 3, 1) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(headDim)), k, false, true);
    const out = tf.matMul(tf.softmax(scores), v);
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * tokens, width]);
  });
}

function attentionSliced(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): tf.Tensor2D {
  const width = qkv.shape[1] / 3;
  const d = headDimOf(width, heads);
  const T = tokens;
  const block = T * d;
  const slot = (b: number, j: number) => (b * 3 * heads + j) * block;
  const scaleData = new Float32Array(3 * width).fill(1);
  scaleData.fill(1 / Math.sqrt(d), 0, width);

  const op = tf.customGrad((qkvIn: tf.Tensor | ((t: tf.Tensor[]) => void)) => {
    const input = qkvIn as tf.Tensor2D;
    const colScale = tf.tensor1d(scaleData);
    // q is pre-scaled by 1/sqrt(d); rows of `rows` hold [T, d] blocks, rows of `cols` hold [d, T].
    const scaled = tf.reshape(tf.mul(input, colScale), [batch, T, 3 * heads, d]);
    const rows = tf.transpose(scaled, [0, 2, 1, 3]).dataSync() as Float32Array;
    const cols = tf.transpose(scaled, [0, 2, 3, 1]).dataSync() as Float32Array;
    const row = (off: number) => tf.tensor2d(rows.subarray(off, off + block), [T, d]);
    const col = (off: number) => tf.tensor2d(cols.subarray(off, off + block), [d, T]);

    const outs: tf.Tensor2D[] = [];
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        outs.push(
          tf.tidy(() => {
            const p = tf.softmax(tf.matMul(row(slot(b, h)), col(slot(b, heads + h))));
            return tf.matMul(p, row(slot(b, 2 * heads + h)));
          }),
        );
      }
    }
    const value = mergeHeads(tf.stack(outs) as tf.Tensor3D, batch, T, heads, d, false);

    const gradFunc = (dy: tf.Tensor) => {
      const dyHeads = tf.transpose(tf.reshape(dy, [batch, T, heads, d]), [0, 2, 1, 3]);
      const dRows = dyHeads.dataSync() as Float32Array; // [B, heads, T, d]
      const dCols = tf.transpose(dyHeads, [0, 1, 3, 2]).dataSync() as Float32Array; // [B, heads, d, T]
      const dQ: tf.Tensor2D[] = [];
      const dKT: tf.Tensor2D[] = [];
      const dVT: tf.Tensor2D[] = [];
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const o = (b * heads + h) * block;
          const [gq, gk, gv] = tf.tidy(() => {
            const p = tf.softmax(tf.matMul(row(slot(b, h)), col(slot(b, heads + h))));
            const dOut = tf.tensor2d(dRows.subarray(o, o + block), [T, d]);
            const dOutT = tf.tensor2d(dCols.subarray(o, o + block), [d, T]);
            const gvT = tf.matMul(dOutT, p); // (P^T dO)^T
            const dp = tf.matMul(dOut, col(slot(b, 2 * heads + h)));
            const pdp = tf.mul(dp, p);
            const ds = tf.sub(pdp, tf.mul(p, tf.sum(pdp, 1, true))); // softmax backward
            const gqs = tf.matMul(ds, row(slot(b, heads + h))); // dS k
            const gkT = tf.matMul(col(slot(b, h)), ds); // (dS^T q)^T
            return [gqs, gkT, gvT];
          });
          dQ.push(gq as tf.Tensor2D);
          dKT.push(gk as tf.Tensor2D);
          dVT.push(gv as tf.Tensor2D);
        }
      }
      const parts = [
        mergeHeads(tf.stack(dQ) as tf.Tensor3D, batch, T, heads, d, false),
        mergeHeads(tf.stack(dKT) as tf.Tensor3D, batch, T, heads, d, true),
        mergeHeads(tf.stack(dVT) as tf.Tensor3D, batch, T, heads, d, true),
      ].map((t) => tf.reshape(t, [batch, T, width]));
      return tf.mul(tf.reshape(tf.concat(parts, 2), [batch * T, 3 * width]), tf.tensor1d(scaleData));
    };
    return { value, gradFunc };
  });
  return op(qkv) as tf.Tensor2D;
}

/** Per-(sample, head) blocks [B*heads, T, d] (or [B*heads, d, T] when `transposed`) to [B*T, heads*d]. */
function mergeHeads(
  stacked: tf.Tensor3D,
  batch: number,
  tokens: number,
  heads: number,
  d: number,
  transposed: boolean,
): tf.Tensor2D {
  const perm = transposed ? [0, 3, 1, 2] : [0, 2, 1, 3];
  const shape = transposed ? [batch, heads, d, tokens] : [batch, heads, tokens, d];
  return tf.reshape(tf.transpose(tf.reshape(stacked, shape), perm), [batch * tokens, heads * d]);
}

function headDimOf(width: number, heads: number): number {
  if (width % heads !== 0) throw new Error(`width ${width} is not divisible by ${heads} heads`);
  return width / heads;
}
