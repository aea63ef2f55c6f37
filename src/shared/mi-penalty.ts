import type { MiEstimator } from './mi-config';

/**
 * Whether MIMIR's penalty lambda * MI(x + delta, z) can do anything beside the reconstruction loss
 * (spec section 4). Its share of the loss, lambda * MI / recon, decides: the engine measures it on the
 * first batch before training (and records it every step as `penalty_share`); the new-run form, which
 * cannot run the model, estimates it from the typical MI of each estimator below.
 */

/**
 * Below this share the penalty is negligible. Its gradient on the encoder is then of the same order
 * relative to the reconstruction's (penalty_grad_ratio measures it), i.e. under 1e-5: smaller than the
 * step-to-step noise of a mini-batch gradient, so AdamW's update is the adv-MAE one.
 */
export const NEGLIGIBLE_PENALTY_SHARE = 1e-5;

/** The masked reconstruction loss (norm_pix) of an untrained model, which the first steps start from. */
export const TYPICAL_RECON_LOSS = 1.5;

/**
 * MI(x, z) of an untrained model at the default kernel (fixed bandwidth, sigma 5 with the sigma^2 d
 * scaling), batch 64 of the built-in set: measured with `penaltyAtStart`
 * (test/engine/pretrain/penalty.test.ts keeps these within 4x of it). Biased HSIC and Renyi MI are
 * tiny because every kernel entry is within about 1e-2 of 1 at this width; nHSIC normalises that away.
 */
export const TYPICAL_MI: Record<MiEstimator, number> = { hsic: 1e-6, nhsic: 20, renyi: 5e-3 };

export interface PenaltySettings {
  mode: string;
  estimator: MiEstimator;
  lambda: number;
}

/** The share the form expects, lambda * typical MI / typical recon; null where the penalty is off. */
export function expectedPenaltyShare(settings: PenaltySettings): number | null {
  if (settings.mode !== 'mimir') return null;
  return (settings.lambda * TYPICAL_MI[settings.estimator]) / TYPICAL_RECON_LOSS;
}

/**
 * The warning for a MIMIR run whose penalty is negligible, or null. `share` is lambda * MI / recon;
 * `measured` says whether it came from the run's first batch or from the typical MI of the estimator.
 */
export function negligiblePenaltyWarning(settings: PenaltySettings, share: number, measured: boolean): string | null {
  if (settings.mode !== 'mimir' || share >= NEGLIGIBLE_PENALTY_SHARE) return null;
  const where = measured ? 'on the first batch' : `with ${settings.estimator}'s typical MI`;
  const raiseTo =
    settings.lambda > 0 ? ` (above ${formatLambda((settings.lambda * NEGLIGIBLE_PENALTY_SHARE) / share)})` : '';
  const advice =
    settings.estimator === 'nhsic'
      ? `raise lambda${raiseTo}`
      : `use estimator nhsic (the authors' code; about ${TYPICAL_MI.nhsic} at the default kernel) or raise lambda${raiseTo}`;
  return (
    `The MI penalty is negligible: lambda * MI / recon = ${share.toExponential(1)} ${where} ` +
    `(${settings.estimator}, lambda ${formatLambda(settings.lambda)}), so this MIMIR run trains as adversarial MAE. ` +
    `To make the penalty count, ${advice}.`
  );
}

function formatLambda(value: number): string {
  return value === 0 ? '0' : value.toExponential(0);
}
