import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '@shared/model-config';
import { encoderFor } from './encoders';
import type { ParamMap } from './params';
import type { ForwardOptions } from './transformer';

/**
 * The fine-tuning classifier of the model's encoder (encoders.ts; the ViT: timm VisionTransformer,
 * global_pool='avg', fc_norm on: the encoder over all patches, mean of the patch tokens, cls
 * excluded, fc_norm, linear head). Input images are [0, 1] pixels NHWC; any normalisation happens
 * inside. Differentiable w.r.t. the images.
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
  return encoderFor(config).classifierForward(params, config, images, options, tapBlock);
}

/** The classifier as a function of the images, for attacks: x [N, H, W, C] -> logits [N, classes]. */
export function makeClassifier(
  params: ParamMap,
  config: ModelConfig,
  options: ForwardOptions = {},
): (x: tf.Tensor4D) => tf.Tensor2D {
  return (x) => tf.tidy(() => classifierForward(params, config, x, options).logits);
}
