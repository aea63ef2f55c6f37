import * as tf from '@tensorflow/tfjs-core';
import { gridSize, type ModelConfig } from '@shared/model-config';
import { embedPatches } from './mae';
import type { ParamMap } from './params';
import { patchify } from './patches';
import { sincosPosEmbed } from './pos-embed';
import { linearLayer, normLayer, prependCls, transformerStack, type ForwardOptions } from './transformer';

/**
 * The fine-tuning classifier (timm VisionTransformer, global_pool='avg', fc_norm on): the encoder
 * over all patches, mean of the patch tokens (cls excluded), fc_norm, linear head. Input images are
 * [0, 1] pixels NHWC; any normalisation happens inside. Differentiable w.r.t. the images.
 */
export type ClassifierOutput = {
  logits: tf.Tensor2D;
  /**
   * Every token after the last block, cls included, before pooling, fc_norm and head: [N, 1 + L, width].
   * The authors' forward_features, which PGD-MI and PGD-fea attack.
   */
  tokens: tf.Tensor3D;
  /** The pooled, fc_norm-ed features the head sees: [N, width]. */
  pooled: tf.Tensor2D;
  /** With `tapBlock` (0-based): every token after that block, [N, 1 + L, width] (PGD-MI at block k). */
  tapped?: tf.Tensor3D;
};

export function classifierForward(
  params: ParamMap,
  config: ModelConfig,
  images: tf.Tensor4D,
  options: ForwardOptions = {},
  tapBlock?: number,
): ClassifierOutput {
  return tf.tidy(() => {
    const n = images.shape[0];
    const grid = gridSize(config);
    const l = grid * grid;
    const d = config.width;
    const pos = tf.tensor2d(sincosPosEmbed(d, grid).subarray(d), [l, d]);
    const tokens = prependCls(
      params,
      'cls_token',
      embedPatches(params, config, patchify(images, config.patchSize), pos, options),
    );
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
  });
}

/** The classifier as a function of the images, for attacks: x [N, H, W, C] -> logits [N, classes]. */
export function makeClassifier(
  params: ParamMap,
  config: ModelConfig,
  options: ForwardOptions = {},
): (x: tf.Tensor4D) => tf.Tensor2D {
  return (x) => tf.tidy(() => classifierForward(params, config, x, options).logits);
}
