import * as tf from '@tensorflow/tfjs-core';
import type { ConvStemEncoder } from '@shared/encoder-config';
import type { ModelConfig } from '@shared/model-config';
import type { z } from 'zod';
import type { EncoderImpl } from './encoders';
import { gelu, layerNorm, linear } from './layers';
import type { ParamSpec } from './param-specs';
import { getParam, type ParamMap } from './params';
import { gatherPatches, patchify, unpatchify } from './patches';
import type { ForwardOptions } from './transformer';
import { plainViT, type TokenEmbedding } from './vit';

/**
 * ViT + ConvStem (Singh et al. 2023; the authors' MIMIR code, models/mae_vit.py ConvBlock): in place
 * of the patch embedding, log2(p) convolutions 3x3 / stride 2 / padding 1, each followed by LayerNorm
 * over the channels (eps 1e-6) and GELU, then a 1x1 convolution to the width. The stem runs on the
 * whole image and masking acts on its output tokens, as in the authors' MAE (so a visible token's
 * receptive field reaches a few pixels into its masked neighbours).
 *
 * Names (the authors' state dict: patch_embed.proj is their ConvBlock, .stem its nn.Sequential):
 *   patch_embed.proj.stem.{3i}.weight [3, 3, in, out], .bias [out]   convolution i
 *   patch_embed.proj.stem.{3i+1}.weight, .bias [out]                 its LayerNorm
 *   patch_embed.proj.stem.{3n}.weight [1, 1, in, width], .bias        the 1x1 projection
 * Kernels are stored HWIO (role 'conv-weight'; torch's [out, in, kh, kw] is a transpose).
 *
 * Each convolution is im2col + the engine's linear layer (its GEMM kernel with hand-written input,
 * weight and bias gradients); im2col itself is slices of the padded input with a hand-written
 * backward pass (col2im), so everything is differentiable on cpu and wasm, where tfjs has no conv2d
 * filter gradient.
 */

type ConvStem = z.infer<typeof ConvStemEncoder>;

function stemOf(config: ModelConfig): ConvStem {
  if (config.encoder.kind !== 'convstem') throw new Error(`internal: a ${config.encoder.kind} model in the ConvStem`);
  return config.encoder;
}

const STEM = 'patch_embed.proj.stem';

/** [in, out, kernel] of each convolution, the 1x1 projection last. */
function stemLayers(config: ModelConfig): [number, number, number][] {
  const layers: [number, number, number][] = [];
  let channels = config.channels;
  for (const out of stemOf(config).stemChannels) {
    layers.push([channels, out, 3]);
    channels = out;
  }
  layers.push([channels, config.width, 1]);
  return layers;
}

function stemSpecs(config: ModelConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  stemLayers(config).forEach(([cin, cout, k], i) => {
    const conv = `${STEM}.${3 * i}`;
    // torch's default Conv2d init (the authors' ConvBlock keeps it): U(+-1/sqrt(fan_in)); biases start at zero here.
    const bound = 1 / Math.sqrt(k * k * cin);
    specs.push(
      { name: `${conv}.weight`, shape: [k, k, cin, cout], role: 'conv-weight', init: { kind: 'uniform', bound } },
      { name: `${conv}.bias`, shape: [cout], role: 'bias', init: { kind: 'zeros' } },
    );
    if (k === 3) {
      const norm = `${STEM}.${3 * i + 1}`;
      specs.push(
        { name: `${norm}.weight`, shape: [cout], role: 'norm', init: { kind: 'ones' } },
        { name: `${norm}.bias`, shape: [cout], role: 'norm', init: { kind: 'zeros' } },
      );
    }
  });
  return specs;
}

/**
 * The gradient of one tap k (0..2) of a stride-2 3x3 window along one axis: t [B, out, 1, X] placed
 * at padded position 2 * o + k of `padded` (even), laid out as [B, padded / 2, 2, X].
 */
function placeTap(t: tf.Tensor, k: number, out: number, padded: number): tf.Tensor {
  return tf.pad(t, [
    [0, 0],
    [k >> 1, padded / 2 - out - (k >> 1)],
    [k & 1, 1 - (k & 1)],
    [0, 0],
  ]);
}

/**
 * im2col of a 3x3, stride-2, padding-1 convolution: x [N, H, W, C] (H, W even) -> [N * H/2 * W/2, 9C],
 * columns in (kernel row, kernel column, channel) order, channel fastest (an HWIO kernel's rows).
 * Built from rank-4 reshapes and slices of the padded input: padded row 2o + d is row o + (d >> 1)
 * of parity d & 1. The gradient is col2im: each tap's slice of dy padded back into place, summed.
 */
export function im2colStride2(x: tf.Tensor4D): tf.Tensor2D {
  const [n, h, w, c] = x.shape;
  if (h % 2 !== 0 || w % 2 !== 0) throw new Error(`the ConvStem needs even feature maps, got [${x.shape}]`);
  const ho = h / 2;
  const wo = w / 2;
  const hp = h + 2;
  const wp = w + 2;
  const op = tf.customGrad((input: tf.Tensor | ((t: tf.Tensor[]) => void)) => {
    const value = tf.tidy(() => {
      const padded = tf.pad(input as tf.Tensor4D, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]);
      const rows = tf.reshape(padded, [n, hp / 2, 2, wp * c]);
      const taps: tf.Tensor[] = [];
      for (let di = 0; di < 3; di++) {
        const r = tf.reshape(tf.slice(rows, [0, di >> 1, di & 1, 0], [n, ho, 1, wp * c]), [n * ho, wp / 2, 2, c]);
        for (let dj = 0; dj < 3; dj++) {
          taps.push(tf.reshape(tf.slice(r, [0, dj >> 1, dj & 1, 0], [n * ho, wo, 1, c]), [n * ho * wo, c]));
        }
      }
      return tf.concat(taps, 1) as tf.Tensor2D;
    });
    const gradFunc = (dy: tf.Tensor): tf.Tensor =>
      tf.tidy(() => {
        const parts = tf.split(dy, 9, 1);
        let rowsGrad: tf.Tensor | null = null;
        for (let di = 0; di < 3; di++) {
          let r: tf.Tensor | null = null;
          for (let dj = 0; dj < 3; dj++) {
            const placed = placeTap(tf.reshape(parts[di * 3 + dj] as tf.Tensor, [n * ho, wo, 1, c]), dj, wo, wp);
            r = r ? tf.add(r, placed) : placed;
          }
          const placedRow = placeTap(tf.reshape(r as tf.Tensor, [n, ho, 1, wp * c]), di, ho, hp);
          rowsGrad = rowsGrad ? tf.add(rowsGrad, placedRow) : placedRow;
        }
        const padded = tf.reshape(rowsGrad as tf.Tensor, [n, hp, wp, c]);
        return tf.slice(padded, [0, 1, 1, 0], [n, h, w, c]);
      });
    return { value, gradFunc };
  });
  return op(x) as tf.Tensor2D;
}

/** Per-channel (x - mean) / std on images [N, H, W, C], or the images themselves without normalisation. */
function normalizeImages(config: ModelConfig, images: tf.Tensor4D): tf.Tensor4D {
  const norm = config.normalize;
  if (!norm) return images;
  return tf.tidy(() => tf.div(tf.sub(images, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std)) as tf.Tensor4D);
}

/** The stem on images [N, H, W, C] in [0, 1] -> tokens [N, L, width], grid order. */
export function convStemForward(
  params: ParamMap,
  config: ModelConfig,
  images: tf.Tensor4D,
  options: ForwardOptions = {},
): tf.Tensor3D {
  const train = options.trainParams ?? true;
  return tf.tidy(() => {
    let x = normalizeImages(config, images);
    const layers = stemLayers(config);
    layers.forEach(([cin, cout, k], i) => {
      const [n, h, w] = x.shape;
      const conv = `${STEM}.${3 * i}`;
      const kernel = tf.reshape(getParam(params, `${conv}.weight`), [k * k * cin, cout]) as tf.Tensor2D;
      const bias = getParam(params, `${conv}.bias`) as tf.Tensor as tf.Tensor1D;
      if (k === 1) {
        const flat = tf.reshape(x, [n * h * w, cin]) as tf.Tensor2D;
        x = tf.reshape(linear(flat, kernel, bias, train), [n, h, w, cout]);
        return;
      }
      const norm = `${STEM}.${3 * i + 1}`;
      const y = linear(im2colStride2(x), kernel, bias, train);
      const normed = layerNorm(
        y,
        getParam(params, `${norm}.weight`) as tf.Tensor as tf.Tensor1D,
        getParam(params, `${norm}.bias`) as tf.Tensor as tf.Tensor1D,
        train,
      );
      x = tf.reshape(gelu(normed), [n, h / 2, w / 2, cout]);
    });
    const [n, g, , d] = x.shape;
    return tf.reshape(x, [n, g * g, d]) as tf.Tensor3D;
  });
}

const convStemEmbedding: TokenEmbedding = {
  specs: stemSpecs,
  // The stem sees the whole image: the MAE input is every patch, in grid order.
  maeInput: (config, images) => patchify(images, config.patchSize),
  embedVisible: (params, config, input, ids, options) =>
    tf.tidy(() => {
      if (input.shape[1] !== config.imageSize ** 2 / config.patchSize ** 2) {
        throw new Error(`the ConvStem reads every patch of the image, got [${input.shape}]`);
      }
      const images = unpatchify(input, config.patchSize, config.channels);
      return gatherPatches(convStemForward(params, config, images, options), ids);
    }),
  embedAll: convStemForward,
  frozenInPretraining: (config, name) => !stemOf(config).pretrainStem && name.startsWith(`${STEM}.`),
};

/** ViT + ConvStem. */
export const convStemEncoder: EncoderImpl = plainViT(convStemEmbedding);
