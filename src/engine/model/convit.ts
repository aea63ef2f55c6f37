import * as tf from '@tensorflow/tfjs-core';
import { gridSize, type ModelConfig } from '@shared/model-config';
import type { Rng } from '../rng';
import { multiHeadAttention } from './attention';
import {
  assignValues,
  classifierFromPretrained,
  decoderSpecs,
  dense,
  embeddingSpecs,
  headSpecs,
  initWithSincosPosEmbed,
  learnedPositions,
  linearSpecs,
  mlpSpecs,
  normSpecs,
  preNormBlock,
  tokenClassifierForward,
  tokenMaeForward,
  type TokenEncoder,
} from './encoder-parts';
import { gatedPositionalAttention, localInit, relativePositionTensor } from './gpsa';
import { embedPatches } from './mae';
import type { ClassifierInitOptions, ParamMap, ParamSpec } from './params';
import { getParam } from './params';
import { sincosPosEmbed } from './pos-embed';
import { dropPathRates, linearLayer, mat, normLayer, prependCls, vec, type ForwardOptions } from './transformer';

/**
 * ConViT (d'Ascoli et al. 2021) with timm's names (timm.models.convit.ConVit, global_pool='token'):
 * blocks 0 .. localUpToLayer-1 use gated positional self-attention on the patch tokens alone, the
 * cls token joins before block localUpToLayer, plain multi-head self-attention after.
 *
 *   cls_token [1, 1, D], pos_embed [1, L, D], patch_embed.proj.{weight [p*p*C, D], bias}
 *   GPSA blocks.{i}: norm1, attn.qk [D, 2D], attn.v [D, D] (biases only with qkvBias), attn.proj,
 *                    attn.pos_proj.weight [3, heads], .bias [heads], attn.gating_param [heads], norm2, mlp.fc1, mlp.fc2
 *   MHSA blocks.{i}: norm1, attn.qkv [D, 3D] (bias only with qkvBias), attn.proj, norm2, mlp.fc1, mlp.fc2
 *   norm; classifier: head; MAE: mask_token, decoder_* (the workbench's MAE decoder).
 *
 * Under masking the GPSA blocks see the visible tokens with their relative positions on the full grid.
 */
export interface ConvitEncoder {
  /** Blocks before this index use GPSA (timm's local_up_to_layer; 10 for convit_small). */
  localUpToLayer: number;
  /** Scales the initial positional weights (timm's locality_strength). */
  localityStrength: number;
  qkvBias: boolean;
}

export function checkConvit(config: ModelConfig, enc: ConvitEncoder): void {
  if (!Number.isInteger(enc.localUpToLayer) || enc.localUpToLayer < 0 || enc.localUpToLayer >= config.depth) {
    throw new Error(
      `ConViT localUpToLayer ${enc.localUpToLayer} must be an integer in 0..${config.depth - 1} (depth ${config.depth}): the cls token joins before that block`,
    );
  }
}

function convitBlockSpecs(prefix: string, config: ModelConfig, enc: ConvitEncoder, gpsa: boolean): ParamSpec[] {
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

function convitBackboneSpecs(config: ModelConfig, enc: ConvitEncoder): ParamSpec[] {
  checkConvit(config, enc);
  const specs = embeddingSpecs(config);
  for (let i = 0; i < config.depth; i++)
    specs.push(...convitBlockSpecs(`blocks.${i}`, config, enc, i < enc.localUpToLayer));
  return [...specs, ...normSpecs('norm', config.width)];
}

export function convitMaeParamSpecs(config: ModelConfig, enc: ConvitEncoder): ParamSpec[] {
  return [...convitBackboneSpecs(config, enc), ...decoderSpecs(config)];
}

export function convitClassifierParamSpecs(
  config: ModelConfig,
  enc: ConvitEncoder,
  numClasses: number,
  options: ClassifierInitOptions = {},
): ParamSpec[] {
  return [...convitBackboneSpecs(config, enc), ...headSpecs(config, numClasses, options.headInitStd)];
}

/** Xavier init (the authors' MAE variant), pos_embed the sin-cos table, then timm's GPSA local_init. */
function initConvit(specs: ParamSpec[], config: ModelConfig, enc: ConvitEncoder, rng: Rng): ParamMap {
  const params = initWithSincosPosEmbed(specs, config, rng, sincosPosEmbed(config.width, gridSize(config)));
  for (let i = 0; i < enc.localUpToLayer; i++) {
    const prefix = `blocks.${i}.attn`;
    const pos = getParam(params, `${prefix}.pos_proj.weight`).dataSync().slice() as Float32Array;
    const identity = localInit(pos, config.heads, config.width, enc.localityStrength);
    assignValues(params, `${prefix}.pos_proj.weight`, pos);
    assignValues(params, `${prefix}.v.weight`, identity);
  }
  return params;
}

export function initConvitMaeParams(config: ModelConfig, enc: ConvitEncoder, rng: Rng): ParamMap {
  return initConvit(convitMaeParamSpecs(config, enc), config, enc, rng);
}

export function initConvitClassifierParams(
  config: ModelConfig,
  enc: ConvitEncoder,
  numClasses: number,
  rng: Rng,
  options: ClassifierInitOptions = {},
): ParamMap {
  return initConvit(convitClassifierParamSpecs(config, enc, numClasses, options), config, enc, rng);
}

export function convitClassifierFromPretrained(
  source: ParamMap,
  config: ModelConfig,
  enc: ConvitEncoder,
  numClasses: number,
  rng: Rng,
  options: ClassifierInitOptions = {},
): ParamMap {
  return classifierFromPretrained(source, convitClassifierParamSpecs(config, enc, numClasses, options), rng);
}

/** The ConViT encoder as a TokenEncoder for this config. */
export function convitEncoder(config: ModelConfig, enc: ConvitEncoder): TokenEncoder {
  checkConvit(config, enc);
  // Called inside its caller's tf.tidy (tokenClassifierForward, tokenMaeForward), which frees the intermediates.
  return (params, patches, ids, options, blockOutputs) => {
    const [n, m] = patches.shape;
    const d = config.width;
    const grid = gridSize(config);
    const pos = learnedPositions(params, ids, grid * grid, d);
    const rel = relativePositionTensor(ids, grid);
    const rates = dropPathRates(options.dropPath?.rate ?? 0, config.depth);
    let tokens = m;
    let x = tf.reshape(embedPatches(params, config, patches, pos, options), [n * m, d]) as tf.Tensor2D;
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

export function convitClassifierForward(
  params: ParamMap,
  config: ModelConfig,
  enc: ConvitEncoder,
  images: tf.Tensor4D,
  options: ForwardOptions = {},
  tapBlock?: number,
) {
  return tokenClassifierForward(convitEncoder(config, enc), params, config, images, options, tapBlock);
}

export function convitMaeForward(
  params: ParamMap,
  config: ModelConfig,
  enc: ConvitEncoder,
  images: tf.Tensor4D,
  mask: Parameters<typeof tokenMaeForward>[4],
  options: Parameters<typeof tokenMaeForward>[5] = {},
) {
  return tokenMaeForward(convitEncoder(config, enc), params, config, images, mask, options);
}
