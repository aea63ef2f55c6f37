/**
 * Learning-rate schedule of MAE (and MIMIR): linear scaling of a base rate by batch/256, linear
 * warm-up, then a half-cycle cosine down to a minimum, evaluated every iteration at a fractional
 * epoch (MAE's util/lr_sched.adjust_learning_rate). And the layer-wise lr decay of fine-tuning
 * (BEiT / MAE's util/lr_decay.param_groups_lrd).
 */

// The linear scaling rule lives in shared/ (the forms show the rate a run will use).
export { scaledLearningRate } from '@shared/learning-rate';

export interface CosineScheduleConfig {
  /** Peak (absolute) learning rate, reached at the end of the warm-up. */
  lr: number;
  /** Floor of the cosine decay (MAE: min_lr, default 0). */
  minLr?: number;
  warmupEpochs: number;
  epochs: number;
}

/** The learning rate at a fractional epoch (epoch + iteration / iterationsPerEpoch). */
export function learningRateAt(config: CosineScheduleConfig, epoch: number): number {
  const { lr, warmupEpochs, epochs } = config;
  const minLr = config.minLr ?? 0;
  if (epoch < warmupEpochs) return (lr * epoch) / warmupEpochs;
  if (epochs <= warmupEpochs) return lr;
  const progress = Math.min(1, (epoch - warmupEpochs) / (epochs - warmupEpochs));
  return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The learning rate for iteration `iteration` (0-based) of epoch `epoch` (0-based). */
export function learningRateAtIteration(
  config: CosineScheduleConfig,
  epoch: number,
  iteration: number,
  iterationsPerEpoch: number,
): number {
  return learningRateAt(config, epoch + iteration / iterationsPerEpoch);
}

/**
 * The layer a parameter belongs to for layer-wise lr decay, out of depth + 2 layers: the
 * embeddings (cls_token, mask_token, pos_embed, patch_embed.*) are layer 0, blocks.i.* is layer i + 1, and
 * everything after the blocks (final norm, fc_norm, head) is layer depth + 1.
 */
export function layerIdForLrDecay(name: string, depth: number): number {
  if (name === 'cls_token' || name === 'pos_embed' || name === 'mask_token') return 0;
  if (name.startsWith('patch_embed')) return 0;
  const block = /^blocks\.(\d+)\./.exec(name);
  if (block) return Number(block[1]) + 1;
  return depth + 1;
}

/** lr scale of a parameter: decay^(depth + 1 - layer id), so the head trains at the full rate. */
export function layerwiseLrScale(depth: number, decay: number): (name: string) => number {
  return (name) => decay ** (depth + 1 - layerIdForLrDecay(name, depth));
}
