import * as tf from '@tensorflow/tfjs-core';
import { patchDim, type ModelConfig } from '@shared/model-config';

/**
 * Images NHWC [N, H, W, C] <-> patches [N, L, p*p*C], patch l = i*grid + j (row i, column j), its
 * values in (row in patch, column in patch, channel) order, channel fastest: MAE's patchify on NHWC.
 * Reshape and one 4-D transpose only (fast on wasm, differentiable everywhere).
 */
export function patchify(images: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  const [n, h, w, c] = images.shape;
  if (h !== w || h % patchSize !== 0) {
    throw new Error(`images [${images.shape}] do not split into ${patchSize} px square patches`);
  }
  const g = h / patchSize;
  return tf.tidy(() => {
    const rows = tf.reshape(images, [n * g, patchSize, g, patchSize * c]);
    return tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [n, g * g, patchSize * patchSize * c]);
  });
}

export function unpatchify(patches: tf.Tensor3D, patchSize: number, channels: number): tf.Tensor4D {
  const [n, l, k] = patches.shape;
  const g = Math.round(Math.sqrt(l));
  if (g * g !== l || k !== patchSize * patchSize * channels) {
    throw new Error(
      `patches [${patches.shape}] are not a square grid of ${patchSize} px patches of ${channels} channels`,
    );
  }
  return tf.tidy(() => {
    const grid = tf.reshape(patches, [n * g, g, patchSize, patchSize * channels]);
    return tf.reshape(tf.transpose(grid, [0, 2, 1, 3]), [n, g * patchSize, g * patchSize, channels]);
  });
}

/**
 * x [N, L, K] gathered per sample by ids [N, M] (int32) -> [N, M, K], i.e. out[n, m] = x[n, ids[n, m]].
 * Gathers rows of the flattened [N*L, K] tensor: tfjs-wasm 4.22's GatherV2 with batchDims = 1
 * returns wrong rows once the batch has 3 or more samples. Not differentiable w.r.t. x on wasm
 * (use gatherPatches for that).
 */
export function batchGather(x: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor3D {
  const [n, l, k] = x.shape;
  if (ids.shape[0] !== n) throw new Error(`ids [${ids.shape}] do not match [${x.shape}]`);
  return tf.tidy(() => {
    const flatIds = tf.add(ids, tf.mul(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), tf.scalar(l, 'int32')));
    return tf.reshape(tf.gather(tf.reshape(x, [n * l, k]), flatIds), [n, ids.shape[1], k]);
  });
}

/**
 * patches [N, L, K] gathered per sample by ids [N, M] (int32) -> [N, M, K]. Differentiable with
 * respect to `patches` on every backend: the backward pass scatters with scatterND (tfjs-wasm has
 * no kernel for gather's own gradient, UnsortedSegmentSum). `ids` is a constant.
 */
export function gatherPatches(patches: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor3D {
  const [n, l, k] = patches.shape;
  if (ids.shape[0] !== n) throw new Error(`ids [${ids.shape}] do not match patches [${patches.shape}]`);
  const m = ids.shape[1];
  const op = tf.customGrad((x: tf.Tensor | ((t: tf.Tensor[]) => void)) => ({
    value: batchGather(x as tf.Tensor3D, ids),
    gradFunc: (dy: tf.Tensor) => {
      const rows = tf.broadcastTo(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), [n, m]);
      return tf.scatterND(tf.stack([rows, ids], 2), dy, [n, l, k]);
    },
  }));
  return op(patches) as tf.Tensor3D;
}

/** Per-channel (x - mean) / std on patches [..., p*p*C], or the input itself when normalisation is off. */
export function normalizePatches<T extends tf.Tensor>(config: ModelConfig, patches: T): T {
  const norm = config.normalize;
  if (!norm) return patches;
  const k = patchDim(config);
  const shift = new Float32Array(k);
  const scale = new Float32Array(k);
  for (let i = 0; i < k; i++) {
    const c = i % config.channels;
    shift[i] = norm.mean[c] ?? 0;
    scale[i] = 1 / (norm.std[c] ?? 1);
  }
  return tf.tidy(() => tf.mul(tf.sub(patches, tf.tensor1d(shift)), tf.tensor1d(scale)) as T);
}
