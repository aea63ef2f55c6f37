import * as tf from '@tensorflow/tfjs-core';
import type { EncoderConfig } from '@shared/encoder-config';
import { gridSize, type ModelConfig } from '@shared/model-config';
import { multiHeadAttention } from './attention';
import {
  assignValues,
  dense,
  embedTokens,
  encoderOfKind,
  mlpSpecs,
  preNormBlock,
  tokenEncoderImpl,
  type TokenEncoder,
} from './encoder-parts';
import { gatedPositionalAttention, localInit, relativePositionTensor } from './gpsa';
import { linearSpecs, normSpecs, type ParamSpec } from './param-specs';
import { getParam, type ParamMap } from './params';
import { dropPathRates, linearLayer, mat, normLayer, prependCls, vec } from './transformer';

/**
 * ConViT (d'Ascoli et al. 2021) with timm's names (timm.models.convit.ConVit, global_pool='token'):
 * blocks 0 .. localUpToLayer-1 use gated positional self-attention on the patch tokens alone, the
 * cls token joins before block localUpToLayer, plain multi-head self-attention after.
 *
 *   cls_token [1, 1, D], pos_embed [1, L, D], patch_embed.proj.{weight [p*p*C, D], bias}
 *   GPSA blocks.{i}: norm1, attn.qk [D, 2D], attn.v [D, D] (biases only with qkvBias), attn.proj,
 *                    attn.pos_proj.weight [3, heads], .bias [heads], attn.gating_param [heads], norm2, mlp.fc1, mlp.fc2
 *   MHSA blocks.{i}: norm1, attn.qkv [D, 3D] (bias only with qkvBias), attn.proj, norm2, mlp.fc1, mlp.fc2
 *   MAE: norm and the workbench's MAE decoder; classifier: norm and head (fresh at fine-tuning).
 *
 * Under masking the GPSA blocks see the visible tokens with their relative positions on the full grid.
 */
export type ConvitEncoder = Extract<EncoderConfig, { kind: 'convit' }>;

export function convitOf(config: ModelConfig): ConvitEncoder {
  const enc = encoderOfKind(config, 'convit');
  if (enc.localUpToLayer >= config.depth) {
    throw new Error(
      `ConViT localUpToLayer ${enc.localUpToLayer} must be < depth ${config.depth}: the cls token joins before that block`,
    );
  }
  return enc;
}

function oneBlockSpecs(prefix: string, config: ModelConfig, enc: ConvitEncoder, gpsa: boolean): ParamSpec[] {
  const d = config.width;
  const h = config.heads;
  const attn = gpsa
    ? [
        ...linearSpecs(`${prefix}.attn.qk`, d, 2 * d, enc.qkvBias),
        ...linearSpecs(`${prefix}.attn.v`, d, d, enc.qkvBias),
        ...linearSpecs(`${prefix}.attn.proj`, d, d),
        ...linearSpecs(`${prefix}.attn.pos_proj`, 3, h),
        { name: `${prefix}.attn.gating_param`, shape: [h], role: 'norm', init: { kind: 'ones' } } satisfies ParamSpec,
      ]
    : [...linearSpecs(`${prefix}.attn.qkv`, d, 3 * d, enc.qkvBias), ...linearSpecs(`${prefix}.attn.proj`, d, d)];
  return [
    ...normSpecs(`${prefix}.norm1`, d),
    ...attn,
    ...normSpecs(`${prefix}.norm2`, d),
    ...mlpSpecs(`${prefix}.mlp`, d, config.mlpRatio),
  ];
}

function convitBlockSpecs(config: ModelConfig): ParamSpec[] {
  const enc = convitOf(config);
  const specs: ParamSpec[] = [];
  for (let i = 0; i < config.depth; i++) {
    specs.push(...oneBlockSpecs(`blocks.${i}`, config, enc, i < enc.localUpToLayer));
  }
  return specs;
}

/** timm's GPSA local_init, gating_param 1 (after pos_embed's sin-cos table, the authors' MAE variant). */
function convitAdjustBlocks(config: ModelConfig, params: ParamMap): void {
  const enc = convitOf(config);
  for (let i = 0; i < enc.localUpToLayer; i++) {
    const prefix = `blocks.${i}.attn`;
    const pos = getParam(params, `${prefix}.pos_proj.weight`).dataSync().slice() as Float32Array;
    const identity = localInit(pos, config.heads, config.width, enc.localityStrength);
    assignValues(params, `${prefix}.pos_proj.weight`, pos);
    assignValues(params, `${prefix}.v.weight`, identity);
    assignValues(params, `${prefix}.gating_param`, new Float32Array(config.heads).fill(1));
  }
}

/** The ConViT encoder as a TokenEncoder for this config. */
export function convitEncoder(config: ModelConfig): TokenEncoder {
  const enc = convitOf(config);
  // Called inside its caller's tf.tidy (tokenEncoderImpl's classifierForward and encodeVisible), which frees the intermediates.
  return (params, patches, ids, options, blockOutputs) => {
    const [n, m] = patches.shape;
    const d = config.width;
    const rel = relativePositionTensor(ids, gridSize(config));
    const rates = dropPathRates(options.dropPath?.rate ?? 0, config.depth);
    let tokens = m;
    let x = embedTokens(params, config, patches, ids, options);
    for (let i = 0; i < config.depth; i++) {
      const prefix = `blocks.${i}`;
      if (i === enc.localUpToLayer) {
        tokens = m + 1;
        x = tf.reshape(prependCls(params, 'cls_token', tf.reshape(x, [n, m, d])), [n * tokens, d]);
      }
      const shape = { batch: n, tokens, heads: config.heads };
      const attend =
        i < enc.localUpToLayer
          ? (h: tf.Tensor2D) =>
              gatedPositionalAttention(
                dense(params, `${prefix}.attn.qk`, h, options, enc.qkvBias),
                dense(params, `${prefix}.attn.v`, h, options, enc.qkvBias),
                rel,
                {
                  posWeight: mat(params, `${prefix}.attn.pos_proj.weight`),
                  posBias: vec(params, `${prefix}.attn.pos_proj.bias`),
                  gating: vec(params, `${prefix}.attn.gating_param`),
                },
                shape,
              )
          : (h: tf.Tensor2D) =>
              multiHeadAttention(
                dense(params, `${prefix}.attn.qkv`, h, options, enc.qkvBias),
                shape,
                options.attention ?? 'auto',
              );
      const project = (h: tf.Tensor2D) => linearLayer(params, `${prefix}.attn.proj`, attend(h), options);
      x = preNormBlock(params, prefix, x, n, project, options, rates[i] ?? 0);
      blockOutputs?.push(tf.reshape(x, [n, tokens, d]));
    }
    return tf.reshape(normLayer(params, 'norm', x, options), [n, m + 1, d]);
  };
}

export const convitEncoderImpl = tokenEncoderImpl(convitEncoder, convitBlockSpecs, convitAdjustBlocks);
