import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../rng';
import { multiHeadAttention, type AttentionStrategy } from './attention';
import { gelu, layerNorm, linear } from './layers';
import { getParam, type ParamMap } from './params';

/** Options shared by every forward pass. */
export interface ForwardOptions {
  /** Attention implementation; 'auto' (default) picks the fastest for the active backend. */
  attention?: AttentionStrategy;
  /**
   * false: parameters enter as constants, so no gradient is computed for them (about a third less
   * backward work when only input gradients are wanted, as in attacks). Default true.
   */
  trainParams?: boolean;
  /** Stochastic depth for training: per-sample, rate rising linearly from 0 (first block) to `rate` (last). */
  dropPath?: { rate: number; rng: Rng };
}

export function vec(params: ParamMap, name: string): tf.Tensor1D {
  return getParam(params, name) as tf.Tensor as tf.Tensor1D;
}

export function mat(params: ParamMap, name: string): tf.Tensor2D {
  return getParam(params, name) as tf.Tensor as tf.Tensor2D;
}

export function linearLayer(params: ParamMap, prefix: string, x: tf.Tensor2D, options: ForwardOptions): tf.Tensor2D {
  return linear(x, mat(params, `${prefix}.weight`), vec(params, `${prefix}.bias`), options.trainParams ?? true);
}

export function normLayer(params: ParamMap, prefix: string, x: tf.Tensor2D, options: ForwardOptions): tf.Tensor2D {
  return layerNorm(x, vec(params, `${prefix}.weight`), vec(params, `${prefix}.bias`), options.trainParams ?? true);
}

/** timm's drop-path rates: linspace(0, rate, depth). */
export function dropPathRates(rate: number, depth: number): number[] {
  return Array.from({ length: depth }, (_, i) => (depth > 1 ? (rate * i) / (depth - 1) : 0));
}

/** Per-sample keep factors as a [batch * tokens, 1] column: 0 (dropped) or 1 / (1 - p) (kept). */
function dropPathColumn(rng: Rng, p: number, batch: number, tokens: number): tf.Tensor2D {
  const keep = 1 - p;
  const values = new Float32Array(batch * tokens);
  for (let n = 0; n < batch; n++) values.fill(rng.uniform() < keep ? 1 / keep : 0, n * tokens, (n + 1) * tokens);
  return tf.tensor2d(values, [batch * tokens, 1]);
}

/** x + branch, the branch scaled per sample by drop path when a rate and an rng are given. */
export function residual(
  x: tf.Tensor2D,
  branch: tf.Tensor2D,
  dropRate: number,
  rng: Rng | undefined,
  batch: number,
): tf.Tensor2D {
  if (dropRate > 0 && rng) {
    return tf.add(x, tf.mul(branch, dropPathColumn(rng, dropRate, batch, x.shape[0] / batch)));
  }
  return tf.add(x, branch);
}

/**
 * Pre-Norm transformer block on tokens x [B*T, D] (all samples stacked):
 * x + attn(norm1(x)), then + mlp(norm2(x)), with GELU in the MLP.
 */
export function transformerBlock(
  params: ParamMap,
  prefix: string,
  x: tf.Tensor2D,
  shape: { batch: number; tokens: number; heads: number },
  options: ForwardOptions,
  dropRate = 0,
): tf.Tensor2D {
  const rng = options.dropPath?.rng;
  const qkv = linearLayer(params, `${prefix}.attn.qkv`, normLayer(params, `${prefix}.norm1`, x, options), options);
  const attended = multiHeadAttention(qkv, shape, options.attention ?? 'auto');
  const x1 = residual(x, linearLayer(params, `${prefix}.attn.proj`, attended, options), dropRate, rng, shape.batch);
  const hidden = gelu(
    linearLayer(params, `${prefix}.mlp.fc1`, normLayer(params, `${prefix}.norm2`, x1, options), options),
  );
  return residual(x1, linearLayer(params, `${prefix}.mlp.fc2`, hidden, options), dropRate, rng, shape.batch);
}

/**
 * Run `depth` blocks named `${prefix}.{i}` on tokens [B*T, D]; `blockOutputs`, when given, receives
 * each block's output (index i holds block i's), for a penalty taken inside the stack.
 */
export function transformerStack(
  params: ParamMap,
  prefix: string,
  depth: number,
  x: tf.Tensor2D,
  shape: { batch: number; tokens: number; heads: number },
  options: ForwardOptions,
  blockOutputs?: tf.Tensor2D[],
): tf.Tensor2D {
  const rates = dropPathRates(options.dropPath?.rate ?? 0, depth);
  let out = x;
  for (let i = 0; i < depth; i++) {
    out = transformerBlock(params, `${prefix}.${i}`, out, shape, options, rates[i] ?? 0);
    blockOutputs?.push(out);
  }
  return out;
}

/** Prepend the cls token (its position embedding is the zero row) to tokens [N, T, D] -> [N, 1 + T, D]. */
export function prependCls(params: ParamMap, name: string, tokens: tf.Tensor3D): tf.Tensor3D {
  const [n, , d] = tokens.shape;
  const cls = tf.add(tf.zeros([n, 1, d]), getParam(params, name)) as tf.Tensor3D;
  return tf.concat([cls, tokens], 1);
}
