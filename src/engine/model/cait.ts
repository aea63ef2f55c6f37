import * as tf from '@tensorflow/tfjs-core';
import type { EncoderConfig } from '@shared/encoder-config';
import type { ModelConfig } from '@shared/model-config';
import { softmaxRows } from '../kernels';
import {
  dense,
  embedTokens,
  encoderOfKind,
  mlp,
  mlpSpecs,
  preNormBlock,
  tokenEncoderImpl,
  type TokenEncoder,
} from './encoder-parts';
import { fromHeads, toHeads } from './gpsa';
import { linearSpecs, normSpecs, type ParamSpec } from './param-specs';
import { getParam, type ParamMap } from './params';
import { linearLayer, normLayer, vec, type ForwardOptions } from './transformer';

/**
 * CaiT (Touvron et al. 2021) with timm's names (timm.models.cait.Cait, global_pool='token'):
 * `depth` LayerScale blocks of talking-heads self-attention on the patch tokens, then
 * `classAttentionBlocks` class-attention blocks that update the cls token alone, then `norm` over
 * cls + patches and the head on the cls token.
 *
 *   cls_token [1, 1, D], pos_embed [1, L, D], patch_embed.proj.{weight, bias}
 *   blocks.{i}: norm1, attn.qkv [D, 3D] (bias with qkvBias), attn.proj_l [heads, heads], attn.proj_w [heads, heads],
 *               attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1 [D], gamma_2 [D]
 *   blocks_token_only.{j}: norm1, attn.q, attn.k, attn.v [D, D] (biases with qkvBias), attn.proj, norm2, mlp.fc1,
 *               mlp.fc2 (timm's mlp_ratio_token_only = mlpRatio), gamma_1, gamma_2
 *   MAE: norm and the workbench's MAE decoder; classifier: norm and head (fresh at fine-tuning).
 *
 * MAE pre-training runs the whole encoder on the visible tokens, the class-attention stage
 * included, and hands cls + visible tokens to the decoder, as the authors' MaskedAutoencoderCait does;
 * so the class-attention blocks are pre-trained and fine-tuning copies them.
 * Drop path has one rate for every self-attention block (timm's CaiT), none in class attention.
 */
export type CaitEncoder = Extract<EncoderConfig, { kind: 'cait' }>;

/** LayerScale's gammas, set to layerScaleInit by caitAdjustBlocks. */
function layerScaleSpecs(prefix: string, width: number): ParamSpec[] {
  return ([1, 2] as const).map((k) => ({
    name: `${prefix}.gamma_${k}`,
    shape: [width],
    role: 'norm',
    init: { kind: 'ones' },
  }));
}

function selfAttentionBlockSpecs(prefix: string, config: ModelConfig, enc: CaitEncoder): ParamSpec[] {
  const d = config.width;
  const h = config.heads;
  return [
    ...normSpecs(`${prefix}.norm1`, d),
    ...linearSpecs(`${prefix}.attn.qkv`, d, 3 * d, enc.qkvBias),
    ...linearSpecs(`${prefix}.attn.proj`, d, d),
    ...linearSpecs(`${prefix}.attn.proj_l`, h, h),
    ...linearSpecs(`${prefix}.attn.proj_w`, h, h),
    ...normSpecs(`${prefix}.norm2`, d),
    ...mlpSpecs(`${prefix}.mlp`, d, config.mlpRatio),
    ...layerScaleSpecs(prefix, d),
  ];
}

function classAttentionBlockSpecs(prefix: string, config: ModelConfig, enc: CaitEncoder): ParamSpec[] {
  const d = config.width;
  return [
    ...normSpecs(`${prefix}.norm1`, d),
    ...linearSpecs(`${prefix}.attn.q`, d, d, enc.qkvBias),
    ...linearSpecs(`${prefix}.attn.k`, d, d, enc.qkvBias),
    ...linearSpecs(`${prefix}.attn.v`, d, d, enc.qkvBias),
    ...linearSpecs(`${prefix}.attn.proj`, d, d),
    ...normSpecs(`${prefix}.norm2`, d),
    ...mlpSpecs(`${prefix}.mlp`, d, config.mlpRatio),
    ...layerScaleSpecs(prefix, d),
  ];
}

function caitBlockSpecs(config: ModelConfig): ParamSpec[] {
  const enc = encoderOfKind(config, 'cait');
  const specs: ParamSpec[] = [];
  for (let i = 0; i < config.depth; i++) specs.push(...selfAttentionBlockSpecs(`blocks.${i}`, config, enc));
  for (let j = 0; j < enc.classAttentionBlocks; j++) {
    specs.push(...classAttentionBlockSpecs(`blocks_token_only.${j}`, config, enc));
  }
  return specs;
}

/** Every LayerScale gamma = layerScaleInit (after pos_embed's sin-cos table, the authors' MAE variant). */
function caitAdjustBlocks(config: ModelConfig, params: ParamMap): void {
  const enc = encoderOfKind(config, 'cait');
  for (const [name, v] of params) {
    if (/\.gamma_[12]$/.test(name)) {
      const t = tf.fill(v.shape, enc.layerScaleInit);
      v.assign(t);
      t.dispose();
    }
  }
}

/** Scores [B, heads, T, T] mixed across heads by a linear layer [heads, heads] (talking heads). */
function mixHeads(params: ParamMap, prefix: string, scores: tf.Tensor4D, options: ForwardOptions): tf.Tensor4D {
  const [b, h, t] = scores.shape;
  const rows = tf.reshape(tf.transpose(scores, [0, 2, 3, 1]), [b * t * t, h]) as tf.Tensor2D;
  return tf.transpose(tf.reshape(linearLayer(params, prefix, rows, options), [b, t, t, h]), [0, 3, 1, 2]);
}

/** Talking-heads attention (timm's TalkingHeadAttn) on normed tokens [B*T, D], before the output projection. */
function talkingHeads(
  params: ParamMap,
  prefix: string,
  x: tf.Tensor2D,
  shape: { batch: number; tokens: number; heads: number },
  options: ForwardOptions,
  qkvBias: boolean,
): tf.Tensor2D {
  const { batch, tokens, heads } = shape;
  const d = x.shape[1] / heads;
  const qkv = dense(params, `${prefix}.qkv`, x, options, qkvBias);
  const [q, k, v] = tf.split(toHeads(qkv, batch, tokens, 3 * heads), 3, 1) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(d)), k, false, true) as tf.Tensor4D;
  const attn = mixHeads(
    params,
    `${prefix}.proj_w`,
    softmaxRows(mixHeads(params, `${prefix}.proj_l`, scores, options)),
    options,
  );
  return fromHeads(tf.matMul(attn, v));
}

/**
 * Class-attention block (timm's LayerScaleBlockClassAttn): the cls token [B, D] attends to itself
 * and the patch tokens x [B*M, D]; only the cls token is updated.
 */
function classAttentionBlock(
  params: ParamMap,
  prefix: string,
  x: tf.Tensor2D,
  cls: tf.Tensor2D,
  batch: number,
  heads: number,
  options: ForwardOptions,
  qkvBias: boolean,
): tf.Tensor2D {
  const width = cls.shape[1];
  const m = x.shape[0] / batch;
  const d = width / heads;
  const joined = tf.concat([tf.reshape(cls, [batch, 1, width]), tf.reshape(x, [batch, m, width])], 1);
  const u = normLayer(params, `${prefix}.norm1`, tf.reshape(joined, [batch * (m + 1), width]), options);
  const uCls = tf.reshape(tf.slice(tf.reshape(u, [batch, m + 1, width]), [0, 0, 0], [batch, 1, width]), [batch, width]);
  const q = tf.reshape(dense(params, `${prefix}.attn.q`, uCls as tf.Tensor2D, options, qkvBias), [batch, heads, 1, d]);
  const k = toHeads(dense(params, `${prefix}.attn.k`, u, options, qkvBias), batch, m + 1, heads);
  const v = toHeads(dense(params, `${prefix}.attn.v`, u, options, qkvBias), batch, m + 1, heads);
  const attn = softmaxRows(tf.matMul(tf.mul(q, 1 / Math.sqrt(d)), k, false, true));
  const out = tf.reshape(tf.matMul(attn, v), [batch, width]) as tf.Tensor2D;
  const gamma = (kk: 1 | 2) => vec(params, `${prefix}.gamma_${kk}`);
  const c1 = tf.add(cls, tf.mul(gamma(1), linearLayer(params, `${prefix}.attn.proj`, out, options))) as tf.Tensor2D;
  return tf.add(
    c1,
    tf.mul(gamma(2), mlp(params, `${prefix}.mlp`, normLayer(params, `${prefix}.norm2`, c1, options), options)),
  ) as tf.Tensor2D;
}

/** The CaiT encoder as a TokenEncoder for this config (called inside its caller's tf.tidy). */
export function caitEncoder(config: ModelConfig): TokenEncoder {
  const enc = encoderOfKind(config, 'cait');
  return (params, patches, ids, options, blockOutputs) => {
    const [n, m] = patches.shape;
    const d = config.width;
    const rate = options.dropPath?.rate ?? 0;
    const shape = { batch: n, tokens: m, heads: config.heads };
    let x = embedTokens(params, config, patches, ids, options);
    for (let i = 0; i < config.depth; i++) {
      const prefix = `blocks.${i}`;
      const attend = (h: tf.Tensor2D) =>
        linearLayer(
          params,
          `${prefix}.attn.proj`,
          talkingHeads(params, `${prefix}.attn`, h, shape, options, enc.qkvBias),
          options,
        );
      x = preNormBlock(params, prefix, x, n, attend, options, rate, true);
      blockOutputs?.push(tf.reshape(x, [n, m, d]));
    }
    let cls = tf.reshape(tf.tile(getParam(params, 'cls_token'), [n, 1, 1]), [n, d]) as tf.Tensor2D;
    for (let j = 0; j < enc.classAttentionBlocks; j++) {
      cls = classAttentionBlock(params, `blocks_token_only.${j}`, x, cls, n, config.heads, options, enc.qkvBias);
    }
    const tokens = tf.concat([tf.reshape(cls, [n, 1, d]), tf.reshape(x, [n, m, d])], 1);
    return tf.reshape(normLayer(params, 'norm', tf.reshape(tokens, [n * (m + 1), d]), options), [n, m + 1, d]);
  };
}

export const caitEncoderImpl = tokenEncoderImpl(caitEncoder, caitBlockSpecs, caitAdjustBlocks);
