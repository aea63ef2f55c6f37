import * as tf from '@tensorflow/tfjs-core';
import type { EncoderConfig } from '@shared/encoder-config';
import { miBlockIndex } from '@shared/mi-config';
import { gridSize, patchDim, type ModelConfig } from '@shared/model-config';
import type { EncoderImpl } from './encoders';
import { gelu, linearNoBias } from './layers';
import { linearSpecs, normHeadSpecs, type ParamSpec } from './param-specs';
import { getParam, type ParamMap } from './params';
import { patchify } from './patches';
import { sincosPosEmbed } from './pos-embed';
import { embedPatches } from './tokens';
import { linearLayer, mat, normLayer, residual, vec, type ForwardOptions } from './transformer';
import { patchEmbedding } from './vit';

/**
 * Pieces shared by the encoders with timm's token layout (ConViT, CaiT): a learned position
 * embedding pos_embed [1, L, D] without a cls row (starting at the sin-cos table, as the authors'
 * MAE variants do), the cls token joined later in the stack, the final `norm` over every token, and a
 * classifier reading the cls token (timm's global_pool='token') into `head`. In the workbench's MAE,
 * `norm` is the shared one before the decoder; the classifier's `norm` and `head` start fresh at fine-tuning.
 */

/** The model's encoder settings, which must be of this kind. */
export function encoderOfKind<K extends EncoderConfig['kind']>(
  config: ModelConfig,
  kind: K,
): Extract<EncoderConfig, { kind: K }> {
  const enc = config.encoder;
  if (enc.kind !== kind) throw new Error(`the model's encoder is ${enc.kind}, not ${kind}`);
  return enc as Extract<EncoderConfig, { kind: K }>;
}

export function mlpSpecs(prefix: string, width: number, mlpRatio: number): ParamSpec[] {
  const hidden = Math.round(width * mlpRatio);
  return [...linearSpecs(`${prefix}.fc1`, width, hidden), ...linearSpecs(`${prefix}.fc2`, hidden, width)];
}

/** cls_token, pos_embed (learned, timm's [1, L, D]) and the patch embedding. */
export function embeddingSpecs(config: ModelConfig): ParamSpec[] {
  const k = patchDim(config);
  const d = config.width;
  const l = gridSize(config) ** 2;
  return [
    { name: 'cls_token', shape: [1, 1, d], role: 'token', init: { kind: 'normal', std: 0.02 } },
    { name: 'pos_embed', shape: [1, l, d], role: 'token', init: { kind: 'normal', std: 0.02 } },
    {
      name: 'patch_embed.proj.weight',
      shape: [k, d],
      role: 'patch-weight',
      init: { kind: 'xavier', fanIn: k, fanOut: d },
    },
    { name: 'patch_embed.proj.bias', shape: [d], role: 'bias', init: { kind: 'zeros' } },
  ];
}

/** timm's token-pooled head: the final `norm` and the linear head, fresh at fine-tuning. */
export function tokenHeadSpecs(config: ModelConfig, numClasses: number, headInitStd: number): ParamSpec[] {
  return normHeadSpecs('norm', config.width, numClasses, headInitStd);
}

export function assignValues(params: ParamMap, name: string, values: Float32Array): void {
  const v = getParam(params, name);
  if (values.length !== v.size) throw new Error(`"${name}" holds ${v.size} values, got ${values.length}`);
  const t = tf.tensor(values, v.shape);
  v.assign(t);
  t.dispose();
}

/** pos_embed to the fixed sin-cos table without its cls row (the authors' MAE variants of ConViT and CaiT). */
export function sincosPosEmbedInit(config: ModelConfig, params: ParamMap): void {
  assignValues(params, 'pos_embed', sincosPosEmbed(config.width, gridSize(config)).subarray(config.width));
}

/** A linear layer with or without its bias (timm's qkv_bias). */
export function dense(
  params: ParamMap,
  prefix: string,
  x: tf.Tensor2D,
  options: ForwardOptions,
  bias: boolean,
): tf.Tensor2D {
  if (bias) return linearLayer(params, prefix, x, options);
  return linearNoBias(x, mat(params, `${prefix}.weight`), options.trainParams ?? true);
}

export function mlp(params: ParamMap, prefix: string, x: tf.Tensor2D, options: ForwardOptions): tf.Tensor2D {
  return linearLayer(params, `${prefix}.fc2`, gelu(linearLayer(params, `${prefix}.fc1`, x, options)), options);
}

/**
 * Pre-norm block on tokens [B*T, D]: x + ls1 * attend(norm1(x)), then + ls2 * mlp(norm2(x)), with
 * drop path on both branches; `layerScale` multiplies each branch by gamma_1 / gamma_2 (CaiT).
 */
export function preNormBlock(
  params: ParamMap,
  prefix: string,
  x: tf.Tensor2D,
  batch: number,
  attend: (normed: tf.Tensor2D) => tf.Tensor2D,
  options: ForwardOptions,
  dropRate: number,
  layerScale = false,
): tf.Tensor2D {
  const rng = options.dropPath?.rng;
  const scaled = (k: 1 | 2, t: tf.Tensor2D) =>
    layerScale ? (tf.mul(t, vec(params, `${prefix}.gamma_${k}`)) as tf.Tensor2D) : t;
  const x1 = residual(x, scaled(1, attend(normLayer(params, `${prefix}.norm1`, x, options))), dropRate, rng, batch);
  const m = mlp(params, `${prefix}.mlp`, normLayer(params, `${prefix}.norm2`, x1, options), options);
  return residual(x1, scaled(2, m), dropRate, rng, batch);
}

/** The patch tokens [N*M, D] at their learned positions (of `ids`, as learnedPositions takes them). */
export function embedTokens(
  params: ParamMap,
  config: ModelConfig,
  patches: tf.Tensor3D,
  ids: ArrayLike<number>[] | undefined,
  options: ForwardOptions,
): tf.Tensor2D {
  const [n, m] = patches.shape;
  const d = config.width;
  const pos = learnedPositions(params, ids, gridSize(config) ** 2, d);
  return tf.reshape(embedPatches(params, config, patches, pos, options), [n * m, d]);
}

/**
 * The learned position embeddings of the given patch ids per sample ([N, M, D]), or of every patch
 * ([1, L, D]). The rows are picked by a product with a one-hot matrix: differentiable on every backend.
 */
export function learnedPositions(
  params: ParamMap,
  ids: ArrayLike<number>[] | undefined,
  l: number,
  d: number,
): tf.Tensor3D {
  const table = getParam(params, 'pos_embed');
  if (!ids) return tf.reshape(table, [1, l, d]);
  const m = ids[0]?.length ?? 0;
  const onehot = new Float32Array(ids.length * m * l);
  ids.forEach((sample, s) => {
    for (let t = 0; t < m; t++) onehot[(s * m + t) * l + (sample[t] ?? 0)] = 1;
  });
  const rows = tf.matMul(tf.tensor2d(onehot, [ids.length * m, l]), tf.reshape(table, [l, d]));
  return tf.reshape(rows, [ids.length, m, d]);
}

/**
 * An encoder on pixel patches [N, M, K] at patch ids (per sample, on the full grid; undefined: all L
 * patches in order): the tokens after the final norm [N, 1 + M, D], cls first. `blockOutputs`, when
 * given, receives each block's output as [N, T, D] (T counts the cls token where the block has it).
 * Called inside a tf.tidy, which frees the intermediates.
 */
export type TokenEncoder = (
  params: ParamMap,
  patches: tf.Tensor3D,
  ids: ArrayLike<number>[] | undefined,
  options: ForwardOptions,
  blockOutputs?: tf.Tensor3D[],
) => tf.Tensor3D;

/**
 * The EncoderImpl of a token encoder: embeddingSpecs then the encoder's `blockSpecs`, pos_embed
 * starting at the sin-cos table then the encoder's own `adjustBlocks`, the patch embedding's MAE
 * input (the visible patches), and the encoder built per config for:
 * - classifierForward: timm's token-pooled classifier (global_pool='token'), head(norm(tokens)[:, 0]);
 * - encodeVisible: the latent on the visible patches and the features MI takes (mi.layer): the
 *   latent itself for the default layer (the whole encoder, after the final norm); else block k's
 *   output, through the final norm when `layer.finalNorm`. Blocks before the cls token joins
 *   (ConViT's GPSA blocks, CaiT's self-attention stage) give the patch tokens only.
 */
export function tokenEncoderImpl(
  encoder: (config: ModelConfig) => TokenEncoder,
  blockSpecs: (config: ModelConfig) => ParamSpec[],
  adjustBlocks: (config: ModelConfig, params: ParamMap) => void,
): EncoderImpl {
  return {
    backboneSpecs: (config) => [...embeddingSpecs(config), ...blockSpecs(config)],
    headSpecs: tokenHeadSpecs,
    maeInput: (config, images, mask) => patchEmbedding.maeInput(config, images, mask),
    encodeVisible: (params, config, patches, visibleIds, layer, options) => {
      const tapped = miBlockIndex(layer, config.depth);
      return tf.tidy(() => {
        const ids = visibleIds instanceof tf.Tensor ? (visibleIds.arraySync() as number[][]) : visibleIds.visible;
        if (ids.length !== patches.shape[0] || (ids[0]?.length ?? 0) !== patches.shape[1]) {
          throw new Error(
            `visible ids for ${ids.length} x ${ids[0]?.length ?? 0} patches do not match patches [${patches.shape}]`,
          );
        }
        const blockOutputs: tf.Tensor3D[] = [];
        const latent = encoder(config)(params, patches, ids, options, blockOutputs);
        if (layer.block === 'last' && layer.finalNorm) return { latent, features: latent };
        const block = blockOutputs[tapped] as tf.Tensor3D;
        if (!layer.finalNorm) return { latent, features: block };
        const [n, t, d] = block.shape;
        const normed = normLayer(params, 'norm', tf.reshape(block, [n * t, d]) as tf.Tensor2D, options);
        return { latent, features: tf.reshape(normed, [n, t, d]) as tf.Tensor3D };
      });
    },
    classifierForward: (params, config, images, options, tapBlock) =>
      tf.tidy(() => {
        const n = images.shape[0];
        const blockOutputs: tf.Tensor3D[] = [];
        const tokens = encoder(config)(params, patchify(images, config.patchSize), undefined, options, blockOutputs);
        const pooled = tf.reshape(tf.slice(tokens, [0, 0, 0], [n, 1, config.width]), [n, config.width]) as tf.Tensor2D;
        const tapped = tapBlock === undefined ? undefined : blockOutputs[tapBlock];
        if (tapBlock !== undefined && !tapped) {
          throw new Error(`no block ${tapBlock + 1} to tap (the encoder has ${blockOutputs.length} blocks)`);
        }
        return { logits: linearLayer(params, 'head', pooled, options), tokens, pooled, ...(tapped ? { tapped } : {}) };
      }),
    frozenInPretraining: () => false,
    adjustInit: (config, params) => {
      sincosPosEmbedInit(config, params);
      adjustBlocks(config, params);
    },
  };
}
