import * as tf from '@tensorflow/tfjs-core';
import { miBlockIndex } from '@shared/mi-config';
import { gridSize, patchDim, type ModelConfig } from '@shared/model-config';
import type { ClassifierOutput } from './classifier';
import type { EncoderImpl } from './encoders';
import type { PatchMask } from './masking';
import { blockSpecs, normHeadSpecs, type ParamSpec } from './param-specs';
import type { ParamMap } from './params';
import { gatherPatches, normalizePatches, patchify } from './patches';
import { patchPosEmbed, visibleIdTensor, visiblePosEmbed } from './tokens';
import { linearLayer, normLayer, prependCls, transformerStack, type ForwardOptions } from './transformer';

/**
 * The ViT encoder (MAE's MaskedAutoencoderViT encoder, timm's VisionTransformer with global_pool
 * 'avg' and fc_norm) around a token embedding: the plain ViT's linear patch embedding here, a
 * ConvStem in convstem.ts. Both share cls_token, blocks.{i}, the MAE's `norm`, fc_norm and head.
 */

/** How pixels become patch tokens (before position embeddings), for plainViT. */
export interface TokenEmbedding {
  /** The embedding's parameters (they follow cls_token). */
  specs(config: ModelConfig): ParamSpec[];
  maeInput(config: ModelConfig, images: tf.Tensor4D, mask: Pick<PatchMask, 'visibleIds'>): tf.Tensor3D;
  /** The MAE input -> the visible tokens [N, Lv, width], in the order of `ids` [N, Lv]. */
  embedVisible(
    params: ParamMap,
    config: ModelConfig,
    input: tf.Tensor3D,
    ids: tf.Tensor2D,
    options: ForwardOptions,
  ): tf.Tensor3D;
  /** Images [N, H, W, C] -> every patch's token [N, L, width], grid order. */
  embedAll(params: ParamMap, config: ModelConfig, images: tf.Tensor4D, options: ForwardOptions): tf.Tensor3D;
  frozenInPretraining(config: ModelConfig, name: string): boolean;
}

/** Linear patch embedding [p*p*C, D] of the patches [N, M, p*p*C] (normalised first when configured). */
function linearEmbed(params: ParamMap, config: ModelConfig, patches: tf.Tensor3D, options: ForwardOptions) {
  const [n, m, k] = patches.shape;
  if (k !== patchDim(config)) throw new Error(`patches have ${k} values, the model expects ${patchDim(config)}`);
  const flat = tf.reshape(normalizePatches(config, patches), [n * m, k]) as tf.Tensor2D;
  return tf.reshape(linearLayer(params, 'patch_embed.proj', flat, options), [n, m, config.width]) as tf.Tensor3D;
}

export const patchEmbedding: TokenEmbedding = {
  specs: (config) => {
    const k = patchDim(config);
    const d = config.width;
    return [
      // MAE initialises the conv as xavier_uniform over its [D, C*p*p] view: a linear layer over the patch.
      {
        name: 'patch_embed.proj.weight',
        shape: [k, d],
        role: 'patch-weight',
        init: { kind: 'xavier', fanIn: k, fanOut: d },
      },
      { name: 'patch_embed.proj.bias', shape: [d], role: 'bias', init: { kind: 'zeros' } },
    ];
  },
  maeInput: (config, images, mask) => tf.tidy(() => gatherPatches(patchify(images, config.patchSize), mask.visibleIds)),
  embedVisible: (params, config, input, ids, options) => {
    if (ids.shape[0] !== input.shape[0] || ids.shape[1] !== input.shape[1]) {
      throw new Error(`visibleIds [${ids.shape}] do not match patches [${input.shape}]`);
    }
    return linearEmbed(params, config, input, options);
  },
  embedAll: (params, config, images, options) =>
    tf.tidy(() => linearEmbed(params, config, patchify(images, config.patchSize), options)),
  frozenInPretraining: () => false,
};

/** fc_norm and the linear head: the classifier's parameters after a ViT backbone. */
export function avgPoolHeadSpecs(config: ModelConfig, numClasses: number, headInitStd: number): ParamSpec[] {
  return normHeadSpecs('fc_norm', config.width, numClasses, headInitStd);
}

/** A ViT over `embedding`: cls token, sin-cos positions, pre-norm blocks, mean-pooled patch tokens. */
export function plainViT(embedding: TokenEmbedding): EncoderImpl {
  return {
    backboneSpecs: (config) => {
      const specs: ParamSpec[] = [
        { name: 'cls_token', shape: [1, 1, config.width], role: 'token', init: { kind: 'normal', std: 0.02 } },
        ...embedding.specs(config),
      ];
      for (let i = 0; i < config.depth; i++) specs.push(...blockSpecs(`blocks.${i}`, config.width, config.mlpRatio));
      return specs;
    },
    headSpecs: avgPoolHeadSpecs,
    maeInput: (config, images, mask) => embedding.maeInput(config, images, mask),
    frozenInPretraining: (config, name) => embedding.frozenInPretraining(config, name),

    encodeVisible: (params, config, input, visibleIds, layer, options) => {
      const tapped = miBlockIndex(layer, config.depth);
      return tf.tidy(() => {
        const ids = visibleIdTensor(visibleIds);
        const [n, lv] = ids.shape;
        const embedded = embedding.embedVisible(params, config, input, ids, options);
        const pos = visiblePosEmbed(config.width, config, visibleIds);
        const tokens = prependCls(params, 'cls_token', tf.add(embedded, pos) as tf.Tensor3D);
        const shape = { batch: n, tokens: lv + 1, heads: config.heads };
        const flat = tf.reshape(tokens, [n * (lv + 1), config.width]) as tf.Tensor2D;
        const blockOutputs: tf.Tensor2D[] = [];
        const last = transformerStack(params, 'blocks', config.depth, flat, shape, options, blockOutputs);
        const out = normLayer(params, 'norm', last, options);
        const latent = tf.reshape(out, [n, lv + 1, config.width]) as tf.Tensor3D;
        const block = blockOutputs[tapped] as tf.Tensor2D;
        const features =
          tapped === config.depth - 1 && layer.finalNorm
            ? latent
            : (tf.reshape(layer.finalNorm ? normLayer(params, 'norm', block, options) : block, [
                n,
                lv + 1,
                config.width,
              ]) as tf.Tensor3D);
        return { latent, features };
      });
    },

    classifierForward: (params, config, images, options, tapBlock): ClassifierOutput =>
      tf.tidy(() => {
        const n = images.shape[0];
        const l = gridSize(config) ** 2;
        const d = config.width;
        const pos = patchPosEmbed(d, config);
        const embedded = embedding.embedAll(params, config, images, options);
        const tokens = prependCls(params, 'cls_token', tf.add(embedded, pos) as tf.Tensor3D);
        const shape = { batch: n, tokens: l + 1, heads: config.heads };
        const flat = tf.reshape(tokens, [n * (l + 1), d]) as tf.Tensor2D;
        const blockOutputs: tf.Tensor2D[] = [];
        const last = transformerStack(params, 'blocks', config.depth, flat, shape, options, blockOutputs);
        const out = tf.reshape(last, [n, l + 1, d]);
        const pooled = tf.mean(tf.slice(out, [0, 1, 0], [n, l, d]), 1) as tf.Tensor2D;
        const features = normLayer(params, 'fc_norm', pooled, options);
        const tapped = tapBlock === undefined ? undefined : blockOutputs[tapBlock];
        return {
          logits: linearLayer(params, 'head', features, options),
          tokens: out as tf.Tensor3D,
          pooled: features,
          ...(tapped ? { tapped: tf.reshape(tapped, [n, l + 1, d]) as tf.Tensor3D } : {}),
        };
      }),
  };
}

/** The plain ViT. */
export const vitEncoder: EncoderImpl = plainViT(patchEmbedding);
