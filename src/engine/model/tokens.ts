import * as tf from '@tensorflow/tfjs-core';
import { gridSize, patchDim, type ModelConfig } from '@shared/model-config';
import type { PatchMask } from './masking';
import type { ParamMap } from './params';
import { normalizePatches } from './patches';
import { sincosPosEmbed } from './pos-embed';
import { linearLayer, type ForwardOptions } from './transformer';

/** Token helpers shared by the encoders and the MAE decoder: position embeddings and the linear patch embedding. */

/** The visible patch ids [N, Lv] (int32), or the mask, whose host copies of the ids avoid a gather. */
export type VisibleIds = tf.Tensor2D | Pick<PatchMask, 'visibleIds' | 'visible'>;

export function visibleIdTensor(ids: VisibleIds): tf.Tensor2D {
  return ids instanceof tf.Tensor ? ids : ids.visibleIds;
}

/**
 * Position embeddings gathered on the host from the mask's id arrays, rows (cls row 0, then patch
 * id + 1): per sample, `lead` rows, then its visible ids, then `masked[s]`'s ids. Equal to tf.gather of
 * the table, which tfjs-wasm runs slowly (about 25 ns a value: 28 ms for the decoder's [32, 257, 128]).
 */
export function positionRows(
  width: number,
  config: ModelConfig,
  lead: number[],
  visible: Int32Array[],
  masked: Int32Array[],
  shape: [number, number, number],
): tf.Tensor3D {
  const table = sincosPosEmbed(width, gridSize(config));
  const out = new Float32Array(shape[0] * shape[1] * width);
  let row = 0;
  for (let s = 0; s < shape[0]; s++) {
    for (const id of lead) out.set(table.subarray(id * width, (id + 1) * width), width * row++);
    for (const id of visible[s] ?? []) out.set(table.subarray((id + 1) * width, (id + 2) * width), width * row++);
    for (const id of masked[s] ?? []) out.set(table.subarray((id + 1) * width, (id + 2) * width), width * row++);
  }
  if (row !== shape[0] * shape[1]) throw new Error(`position rows: ${row} rows for [${shape}]`);
  return tf.tensor3d(out, shape);
}

/** Fixed position embeddings of the patches (no cls row): [L, width]. */
export function patchPosEmbed(width: number, config: ModelConfig): tf.Tensor2D {
  const grid = gridSize(config);
  return tf.tensor2d(sincosPosEmbed(width, grid).subarray(width), [grid * grid, width]);
}

/** Embed pixel patches [N, M, K] (normalising them first if configured) and add position embeddings [N|1, M, D]. */
export function embedPatches(
  params: ParamMap,
  config: ModelConfig,
  patches: tf.Tensor3D,
  pos: tf.Tensor,
  options: ForwardOptions,
): tf.Tensor3D {
  const [n, m, k] = patches.shape;
  if (k !== patchDim(config)) throw new Error(`patches have ${k} values, the model expects ${patchDim(config)}`);
  const flat = tf.reshape(normalizePatches(config, patches), [n * m, k]) as tf.Tensor2D;
  const embedded = tf.reshape(linearLayer(params, 'patch_embed.proj', flat, options), [n, m, config.width]);
  return tf.add(embedded, pos) as tf.Tensor3D;
}

/** The fixed position embeddings of the visible patches: [N, Lv, width]. */
export function visiblePosEmbed(width: number, config: ModelConfig, ids: VisibleIds): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, lv] = visibleIdTensor(ids).shape;
    return ids instanceof tf.Tensor
      ? (tf.gather(patchPosEmbed(width, config), ids) as tf.Tensor as tf.Tensor3D)
      : positionRows(width, config, [], ids.visible, [], [n, lv, width]);
  });
}
