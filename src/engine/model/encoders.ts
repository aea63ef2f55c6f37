import type * as tf from '@tensorflow/tfjs-core';
import { tfjsEncoderRefusal, type EncoderKind } from '@shared/encoder-config';
import type { MiLayer } from '@shared/mi-config';
import type { ModelConfig } from '@shared/model-config';
import type { ClassifierOutput } from './classifier';
import type { PatchMask } from './masking';
import type { ParamSpec } from './param-specs';
import type { ParamMap } from './params';
import type { VisibleIds } from './tokens';
import type { ForwardOptions } from './transformer';
import { caitEncoderImpl } from './cait';
import { convitEncoderImpl } from './convit';
import { convStemEncoder } from './convstem';
import { vitEncoder } from './vit';

/**
 * The one place the tfjs engine maps `model.encoder.kind` to its implementation. maeParamSpecs,
 * classifierParamSpecs, encoderInput, encodeVisibleWithLayer and classifierForward all ask here.
 *
 * What an encoder supplies (the MAE decoder, its `norm` before the decoder's input and the losses stay shared):
 * - backboneSpecs: its parameters up to the last block (tokens, embedding, blocks), in Map order: the
 *   part fine-tuning copies from the pre-trained MAE. Names: timm's where timm has the architecture.
 * - headSpecs: the classifier's own parameters after the backbone, fresh at fine-tuning (the ViT:
 *   fc_norm and head; CaiT would put its class-attention blocks here).
 * - maeInput: what the MAE's encoder reads of the images, [N, M, p*p*C]: the visible patches (M = Lv)
 *   or, when the embedding sees the whole image (ConvStem), every patch (M = L). An attack on the
 *   "visible" input perturbs exactly this.
 * - encodeVisible: that input and the visible ids of the full grid (mask.visibleIds, int32 [N, Lv],
 *   the grid being imageSize / patchSize square) -> latent [N, 1 + Lv, width] through the final
 *   `norm` (cls first, then the visible tokens in id order), and `features`, the tokens MI is taken
 *   on: the output of block miBlockIndex(layer, depth), through `norm` when layer.finalNorm.
 * - classifierForward: images [N, H, W, C] in [0, 1] -> logits, every token after the last block
 *   (PGD-fea / PGD-MI attack these), the pooled features and, with tapBlock, that block's tokens.
 * - frozenInPretraining: parameters pre-training leaves at their initial values (ConvStem's stem
 *   with pretrainStem false); they get no gradient there and train in fine-tuning.
 * Everything must be differentiable w.r.t. params and pixels on cpu and wasm (no conv2d filter gradient there).
 */
export interface EncoderImpl {
  backboneSpecs(config: ModelConfig): ParamSpec[];
  headSpecs(config: ModelConfig, numClasses: number, headInitStd: number): ParamSpec[];
  maeInput(config: ModelConfig, images: tf.Tensor4D, mask: Pick<PatchMask, 'visibleIds'>): tf.Tensor3D;
  encodeVisible(
    params: ParamMap,
    config: ModelConfig,
    input: tf.Tensor3D,
    visibleIds: VisibleIds,
    layer: MiLayer,
    options: ForwardOptions,
  ): { latent: tf.Tensor3D; features: tf.Tensor3D };
  classifierForward(
    params: ParamMap,
    config: ModelConfig,
    images: tf.Tensor4D,
    options: ForwardOptions,
    tapBlock?: number,
  ): ClassifierOutput;
  frozenInPretraining(config: ModelConfig, name: string): boolean;
  /**
   * Initial values that are not plain draws (ConViT's GPSA local init, CaiT's LayerScale, learned
   * position embeddings starting at the sin-cos table): applied in place after every spec's draw, so
   * the draws stay in spec order. The PyTorch twin is adjust_init.
   */
  adjustInit?(config: ModelConfig, params: ParamMap): void;
}

/**
 * Encoder kinds to implementations; null: not (yet) on this engine. ConvNeXt and Swin are
 * PyTorch-only (tfjsEncoderRefusal says so). A function, read at call time: the implementations
 * import modules that import this one.
 */
function registry(): Record<EncoderKind, EncoderImpl | null> {
  return {
    vit: vitEncoder,
    convstem: convStemEncoder,
    convit: convitEncoderImpl,
    cait: caitEncoderImpl,
    convnext: null,
    swin: null,
  };
}

export function encoderFor(config: ModelConfig): EncoderImpl {
  const kind = config.encoder.kind;
  const impl = registry()[kind];
  if (impl) return impl;
  const refusal = tfjsEncoderRefusal(config.encoder);
  if (refusal) {
    // Reached by what only this engine does (evaluation, prediction, export, loss landscapes), not by training.
    throw new Error(
      `${refusal}. Prediction, export, loss landscapes and the attacks beyond PGD run on the TensorFlow.js engine, ` +
        `which cannot run it yet; evaluation with natural accuracy and PGD runs on the PyTorch engine (mimir eval picks it)`,
    );
  }
  throw new Error(`The ${kind} encoder is not implemented on the tfjs engine yet`);
}
