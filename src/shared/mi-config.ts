import { z } from 'zod';
import { configObject } from './config-object';

/**
 * Settings of the mutual-information estimators (spec section 4): which estimator, and how the
 * Gaussian kernels and the estimator are parameterised. Run configs embed `MiConfig`.
 */

export const MI_ESTIMATORS = ['hsic', 'nhsic', 'renyi'] as const;
export const MiEstimator = z.enum(MI_ESTIMATORS, { error: "MI estimator must be 'hsic', 'nhsic' or 'renyi'" });
export type MiEstimator = z.infer<typeof MiEstimator>;

export const KERNEL_BANDWIDTHS = ['fixed', 'median'] as const;

export const MiOptions = configObject({
  /**
   * Kernel width for `bandwidth: fixed`: k(a, b) = exp(-||a - b||^2 / (2 sigma^2 d)), d the feature
   * dimension (the authors' code's scaling).
   */
  sigma: z
    .number({ error: 'sigma must be a number' })
    .positive('sigma must be positive')
    .finite('sigma must be finite')
    .default(5),
  /**
   * `fixed`: the width above. `median`: the median heuristic, k(a, b) = exp(-||a - b||^2 / (2 m)) with
   * m the median squared distance between distinct samples of the batch (sigma is then unused; m is
   * a constant for the gradient, as in the authors' code).
   */
  bandwidth: z.enum(KERNEL_BANDWIDTHS, { error: "bandwidth must be 'fixed' or 'median'" }).default('fixed'),
  /**
   * Order of the matrix-based Renyi entropy (`renyi`). Above 1: below it the gradient
   * lambda^(alpha - 1) diverges at the numerically zero eigenvalues of a Gram matrix.
   */
  alpha: z
    .number({ error: 'alpha must be a number' })
    .gt(1, 'alpha must be above 1')
    .finite('alpha must be finite')
    .default(1.01),
  /** Ridge of `nhsic`: R = Kc (Kc + epsR N I)^-1. */
  epsR: z
    .number({ error: 'epsR must be a number' })
    .positive('epsR must be positive')
    .finite('epsR must be finite')
    .default(1e-5),
});
export type MiOptions = z.output<typeof MiOptions>;
export type MiOptionsInput = z.input<typeof MiOptions>;

export const MiConfig = MiOptions.extend({
  /**
   * The authors' code's estimator (hsic_normalized_cca), which trained the paper's models. Biased
   * HSIC (`hsic`, Eq. 29) is about 1e-6 on image-sized inputs, so at lambda 1e-5 it does nothing.
   */
  estimator: MiEstimator.default('nhsic'),
});
export type MiConfig = z.output<typeof MiConfig>;
export type MiConfigInput = z.input<typeof MiConfig>;

/**
 * Where the MI penalty takes z (paper Table XXI): the output of encoder block `block` (1-based, as
 * the paper counts: 12 is ViT-S's last) or 'last', with or without the encoder's final LayerNorm.
 * The default, the last block after the final norm, is the paper's choice.
 */
export const MiLayer = configObject({
  block: z
    .union([
      z.literal('last'),
      z
        .number({ error: "mi.layer.block must be 'last' or a block number" })
        .int('mi.layer.block must be a whole number')
        .min(1, 'mi.layer.block counts from 1 (the first block)'),
    ])
    .default('last'),
  finalNorm: z.boolean({ error: 'mi.layer.finalNorm must be true or false' }).default(true),
});
export type MiLayer = z.output<typeof MiLayer>;

/** The paper's layer: the last block, after the final norm. */
export const DEFAULT_MI_LAYER: MiLayer = { block: 'last', finalNorm: true };

/** The block index (0-based) whose output MI takes; an error naming `what` when the encoder has no such block. */
export function miBlockIndex(layer: Pick<MiLayer, 'block'>, depth: number, what = 'mi.layer.block'): number {
  if (layer.block === 'last') return depth - 1;
  if (layer.block > depth) {
    throw new Error(
      `${what} ${layer.block} is past the encoder's ${depth} block${depth === 1 ? '' : 's'}: give 1..${depth} or 'last'.`,
    );
  }
  return layer.block - 1;
}
