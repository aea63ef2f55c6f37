import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_MI_LAYER, type MiLayer } from '@shared/mi-config';
import { gridSize, patchDim, type ModelConfig } from '@shared/model-config';
import { encoderFor } from './encoders';
import type { PatchMask } from './masking';
import { getParam, type ParamMap } from './params';
import { batchGather, gatherPatches, normalizePatches, patchify } from './patches';
import { sincosPosEmbed } from './pos-embed';
import { positionRows, type VisibleIds } from './tokens';
import { linearLayer, normLayer, transformerStack, type ForwardOptions } from './transformer';

/**
 * The masked autoencoder, in composable pieces so a trainer can place an attack's perturbation
 * either on the visible patches or on the whole image:
 *
 *   const vis = encoderInput(config, images, mask);           // [N, Lv, K] for a ViT, gathers an input only
 *   const latent = encodeVisible(params, config, vis.add(delta), mask.visibleIds);   // (a)
 *   // or: encoderInput(config, images.add(deltaImage), mask) (b), differentiable too
 *   const pred = decode(params, config, latent, mask);          // [N, L, K], visible then masked
 *   const loss = reconstructionLoss(pred, orderedTargets(config, images, mask), mask.numVisible);
 *
 * Ordering: the decoder sees cls, the visible tokens, then one mask token per masked patch, each
 * with the position embedding of its patch; since attention is order-free this equals MAE's
 * un-shuffle, and predictions come out in that order. Nothing gathers a tensor that needs a
 * gradient except through gatherPatches, whose gradient works on every backend.
 */

/** The pixel patches of `images` at the mask's visible ids: [N, Lv, p*p*C] (the ViT's encoder input). */
export function visiblePatches(
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: Pick<PatchMask, 'visibleIds'>,
): tf.Tensor3D {
  return tf.tidy(() => gatherPatches(patchify(images, config.patchSize), mask.visibleIds));
}

/**
 * The encoder's MAE input for `images`: the visible pixel patches [N, Lv, p*p*C] for a ViT; every
 * patch [N, L, p*p*C] for an encoder whose embedding sees the whole image (a ConvStem, whose masking
 * acts on its output tokens). An attack's perturbation of the "visible" input has this shape.
 */
export function encoderInput(
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: Pick<PatchMask, 'visibleIds'>,
): tf.Tensor3D {
  return encoderFor(config).maeInput(config, images, mask);
}

/**
 * Encoder on its MAE input (encoderInput: the visible pixel patches for a ViT) with the visible patch
 * ids [N, Lv] (int32; or the mask, whose host copies of the ids place the position embeddings
 * without a gather). Returns the latent [N, 1 + Lv, width] after the final LayerNorm (cls first,
 * tokens in the order of `visibleIds`).
 */
export function encodeVisible(
  params: ParamMap,
  config: ModelConfig,
  input: tf.Tensor3D,
  visibleIds: VisibleIds,
  options: ForwardOptions = {},
): tf.Tensor3D {
  return encodeVisibleWithLayer(params, config, input, visibleIds, DEFAULT_MI_LAYER, options).latent;
}

/**
 * encodeVisible that also returns the encoder output `layer` names (mi.layer, Table XXI): block k's
 * output [N, 1 + Lv, width], through the final LayerNorm when `layer.finalNorm`. For the default
 * layer (the last block, normed) `features` is `latent` itself.
 */
export function encodeVisibleWithLayer(
  params: ParamMap,
  config: ModelConfig,
  input: tf.Tensor3D,
  visibleIds: VisibleIds,
  layer: MiLayer,
  options: ForwardOptions = {},
): { latent: tf.Tensor3D; features: tf.Tensor3D } {
  return encoderFor(config).encodeVisible(params, config, input, visibleIds, layer, options);
}

/**
 * Decoder: latent [N, 1 + Lv, width] -> predictions [N, L, p*p*C] for the patches in the order
 * visible ids then masked ids (of `mask`; its host id arrays, when given, place the position
 * embeddings without a gather). Drop path is not used in the decoder (MAE has none).
 */
export function decode(
  params: ParamMap,
  config: ModelConfig,
  latent: tf.Tensor3D,
  mask: Pick<PatchMask, 'visibleIds' | 'maskedIds'> & Partial<Pick<PatchMask, 'visible' | 'masked'>>,
  options: ForwardOptions = {},
): tf.Tensor3D {
  return tf.tidy((): tf.Tensor3D => {
    const [n, t, d] = latent.shape;
    const lv = t - 1;
    const lm = mask.maskedIds.shape[1];
    const l = lv + lm;
    const dd = config.decoderWidth;
    if (mask.visibleIds.shape[1] !== lv || mask.maskedIds.shape[0] !== n) {
      throw new Error(`latent [${latent.shape}] does not match the mask (${mask.visibleIds.shape[1]} visible)`);
    }
    const embedded = tf.reshape(linearLayer(params, 'decoder_embed', tf.reshape(latent, [n * t, d]), options), [
      n,
      t,
      dd,
    ]);
    const maskTokens = tf.add(tf.zeros([n, lm, dd]), getParam(params, 'mask_token'));
    let pos: tf.Tensor;
    if (mask.visible && mask.masked) {
      pos = positionRows(dd, config, [0], mask.visible, mask.masked, [n, l + 1, dd]);
    } else {
      const order = tf.concat([tf.zeros([n, 1], 'int32'), tf.add(mask.visibleIds, 1), tf.add(mask.maskedIds, 1)], 1);
      pos = tf.gather(tf.tensor2d(sincosPosEmbed(dd, gridSize(config)), [l + 1, dd]), order);
    }
    const tokens = tf.add(tf.concat([embedded, maskTokens], 1), pos);
    const shape = { batch: n, tokens: l + 1, heads: config.decoderHeads };
    const decoderOptions = { ...options, dropPath: undefined };
    const flat = tf.reshape(tokens, [n * (l + 1), dd]) as tf.Tensor2D;
    const blocks = transformerStack(params, 'decoder_blocks', config.decoderDepth, flat, shape, decoderOptions);
    const pred = linearLayer(params, 'decoder_pred', normLayer(params, 'decoder_norm', blocks, options), options);
    const k = patchDim(config);
    return tf.slice(tf.reshape(pred, [n, l + 1, k]) as tf.Tensor3D, [0, 1, 0], [n, l, k]);
  });
}

/**
 * Reconstruction targets aligned with decode's output: the clean image's patches (normalised like
 * the model's input when normalisation is configured) in the order visible ids then masked ids.
 * Gathers a constant, so no gradient is involved.
 */
export function orderedTargets(
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: Pick<PatchMask, 'visibleIds' | 'maskedIds'>,
): tf.Tensor3D {
  return tf.tidy(() => {
    // Differentiable (the authors' image attack differentiates through its own target): gatherPatches
    // keeps its ids for the backward pass, so they must be the mask's own tensors, not a tidy's temporary.
    const patches = normalizePatches(config, patchify(images, config.patchSize));
    return tf.concat([gatherPatches(patches, mask.visibleIds), gatherPatches(patches, mask.maskedIds)], 1);
  });
}

export interface ReconstructionLossOptions {
  /** Per-patch normalised targets, (t - mean) / sqrt(var + 1e-6) over the patch's values (MAE's norm_pix_loss). Default true. */
  normPixLoss?: boolean;
}

export const NORM_PIX_EPS = 1e-6;

/**
 * MSE on the masked patches only: `pred` and `target` are [N, L, K] in the order visible then masked
 * (decode / orderedTargets); positions numVisible.. are the masked ones. MAE: mean over each
 * patch's values, then over the masked patches. norm_pix uses the unbiased variance (torch's var()).
 */
export function reconstructionLoss(
  pred: tf.Tensor3D,
  target: tf.Tensor3D,
  numVisible: number,
  options: ReconstructionLossOptions = {},
): tf.Scalar {
  return tf.tidy(() => {
    const [n, l, k] = pred.shape;
    if (!tf.util.arraysEqual(pred.shape, target.shape)) {
      throw new Error(`prediction [${pred.shape}] and target [${target.shape}] differ in shape`);
    }
    const predMasked = tf.slice(pred, [0, numVisible, 0], [n, l - numVisible, k]);
    let targetMasked: tf.Tensor = tf.slice(target, [0, numVisible, 0], [n, l - numVisible, k]);
    if (options.normPixLoss ?? true) targetMasked = normPixTargets(targetMasked);
    return tf.mean(tf.squaredDifference(predMasked, targetMasked));
  });
}

/** (t - mean) / sqrt(var + 1e-6) over the last axis, var unbiased as torch's Tensor.var(). */
export function normPixTargets<T extends tf.Tensor>(target: T): T {
  return tf.tidy(() => {
    const k = target.shape[target.rank - 1] ?? 1;
    const mean = tf.mean(target, -1, true);
    const centred = tf.sub(target, mean);
    const variance = tf.div(tf.sum(tf.square(centred), -1, true), k - 1);
    return tf.div(centred, tf.sqrt(tf.add(variance, NORM_PIX_EPS))) as T;
  });
}

export interface MaeForwardOptions extends ForwardOptions, ReconstructionLossOptions {
  /** Perturbation added to the encoder input (encoderInput: the visible pixel patches [N, Lv, K] for a ViT) before encoding. */
  delta?: tf.Tensor3D;
}

export type MaeOutput = {
  latent: tf.Tensor3D;
  pred: tf.Tensor3D;
  loss: tf.Scalar;
};

/** The whole masked-autoencoder pass on clean images (plus an optional visible-patch perturbation). */
export function maeForward(
  params: ParamMap,
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: Pick<PatchMask, 'visibleIds' | 'maskedIds' | 'numVisible'> & Partial<Pick<PatchMask, 'visible' | 'masked'>>,
  options: MaeForwardOptions = {},
): MaeOutput {
  return tf.tidy(() => {
    const vis = encoderInput(config, images, mask);
    const input = options.delta ? (tf.add(vis, options.delta) as tf.Tensor3D) : vis;
    const ids = mask.visible ? { visibleIds: mask.visibleIds, visible: mask.visible } : mask.visibleIds;
    const latent = encodeVisible(params, config, input, ids, options);
    const pred = decode(params, config, latent, mask, options);
    const loss = reconstructionLoss(pred, orderedTargets(config, images, mask), mask.numVisible, options);
    return { latent, pred, loss };
  });
}

/** Put per-patch values given in the order visible then masked back into spatial order [N, L, K]. */
export function toSpatialOrder(values: tf.Tensor3D, mask: Pick<PatchMask, 'visible' | 'masked'>): tf.Tensor3D {
  return tf.tidy(() => {
    const n = mask.visible.length;
    const l = values.shape[1];
    const restore = new Int32Array(n * l);
    for (let s = 0; s < n; s++) {
      const order = [...(mask.visible[s] ?? []), ...(mask.masked[s] ?? [])];
      order.forEach((patch, position) => (restore[s * l + patch] = position));
    }
    return batchGather(values, tf.tensor2d(restore, [n, l], 'int32'));
  });
}
