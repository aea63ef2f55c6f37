import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../rng';

/**
 * One random mask per sample (MAE's random_masking): exactly int(L * (1 - ratio)) visible patches,
 * a uniformly random subset drawn from the Rng. Ids are per sample, ascending (spatial order) by
 * default; `order: 'shuffled'` keeps the visible ids in the random draw order (the authors' code
 * feeds the encoder shuffled tokens; attention does not care, the flattened latent does).
 */
export interface PatchMask {
  batch: number;
  numPatches: number;
  numVisible: number;
  numMasked: number;
  /** int32 [N, numVisible]. */
  visibleIds: tf.Tensor2D;
  /** int32 [N, numMasked], ascending. */
  maskedIds: tf.Tensor2D;
  /** float32 [N, L] in spatial order: 1 = masked, 0 = visible (MAE's convention). */
  mask: tf.Tensor2D;
  /** Host copies of the ids, one array per sample. */
  visible: Int32Array[];
  masked: Int32Array[];
  dispose(): void;
}

export interface MaskingOptions {
  order?: 'spatial' | 'shuffled';
}

export function randomMasking(
  rng: Rng,
  batch: number,
  numPatches: number,
  maskRatio = 0.75,
  options: MaskingOptions = {},
): PatchMask {
  if (!(maskRatio > 0 && maskRatio < 1)) throw new Error(`mask ratio must be in (0, 1), got ${maskRatio}`);
  const numVisible = Math.floor(numPatches * (1 - maskRatio));
  if (numVisible < 1 || numVisible >= numPatches) {
    throw new Error(
      `mask ratio ${maskRatio} leaves ${numVisible} of ${numPatches} patches visible: need at least one of each`,
    );
  }
  const visible: Int32Array[] = [];
  const masked: Int32Array[] = [];
  for (let n = 0; n < batch; n++) {
    const order = rng.shuffle(Array.from({ length: numPatches }, (_, i) => i));
    const vis = Int32Array.from(order.slice(0, numVisible));
    if (options.order !== 'shuffled') vis.sort();
    visible.push(vis);
    masked.push(Int32Array.from(order.slice(numVisible)).sort());
  }
  return maskFromIds(visible, masked, numPatches);
}

/** A mask from explicit per-sample ids (every patch must appear exactly once in visible + masked). */
export function maskFromIds(visible: Int32Array[], masked: Int32Array[], numPatches: number): PatchMask {
  const batch = visible.length;
  const numVisible = visible[0]?.length ?? 0;
  const numMasked = numPatches - numVisible;
  const maskValues = new Float32Array(batch * numPatches);
  const visFlat = new Int32Array(batch * numVisible);
  const maskedFlat = new Int32Array(batch * numMasked);
  for (let n = 0; n < batch; n++) {
    const vis = visible[n];
    const msk = masked[n];
    if (!vis || !msk || vis.length !== numVisible || msk.length !== numMasked) {
      throw new Error(`sample ${n}: expected ${numVisible} visible and ${numMasked} masked ids`);
    }
    const seen = new Uint8Array(numPatches);
    for (const id of [...vis, ...msk]) {
      if (id < 0 || id >= numPatches || seen[id])
        throw new Error(`sample ${n}: ids are not a permutation of 0..${numPatches - 1}`);
      seen[id] = 1;
    }
    visFlat.set(vis, n * numVisible);
    maskedFlat.set(msk, n * numMasked);
    for (const id of msk) maskValues[n * numPatches + id] = 1;
  }
  const visibleIds = tf.tensor2d(visFlat, [batch, numVisible], 'int32');
  const maskedIds = tf.tensor2d(maskedFlat, [batch, numMasked], 'int32');
  const mask = tf.tensor2d(maskValues, [batch, numPatches], 'float32');
  return {
    batch,
    numPatches,
    numVisible,
    numMasked,
    visibleIds,
    maskedIds,
    mask,
    visible,
    masked,
    dispose: () => {
      visibleIds.dispose();
      maskedIds.dispose();
      mask.dispose();
    },
  };
}
