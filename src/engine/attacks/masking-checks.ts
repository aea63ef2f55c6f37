import * as tf from '@tensorflow/tfjs-core';
import type { AutoAttackStage, GradientMaskingReport, MaskingWarningKind } from '@shared/attack-config';
import { apgd } from './apgd';
import { crossEntropyLoss } from './losses';
import { QueryCounter, lossAndGradient, oneHot, predictions } from './oracle';
import { checkImages, labelsToArray, type Classifier, type Labels, type ThreatModel } from './types';

/**
 * Signs that a robustness number comes from gradient masking rather than robustness (Athalye et al.
 * 2018; AutoAttack's checks.py), for the evaluation report to show next to the accuracies.
 */

export interface ZeroGradientCheck {
  count: number;
  total: number;
  fraction: number;
  flagged: boolean;
}

/** Examples whose input gradient of the cross-entropy is exactly zero everywhere. */
export async function zeroGradientCheck(model: Classifier, x: tf.Tensor4D, labels: Labels): Promise<ZeroGradientCheck> {
  const y = labelsToArray(labels);
  checkImages(x, y.length);
  const logits = tf.tidy(() => model(tf.slice(x, 0, 1)));
  const yOneHot = oneHot(y, logits.shape[1]);
  logits.dispose();
  const g = lossAndGradient(model, x, (z) => crossEntropyLoss(z, yOneHot), new QueryCounter());
  const perExample = tf.tidy(() => tf.sum(tf.abs(tf.reshape(g.grad, [y.length, -1])), 1));
  const sums = await perExample.data();
  tf.dispose([g.logits, g.loss, g.grad, perExample, yOneHot]);
  const count = Array.from(sums).filter((s) => s === 0).length;
  return { count, total: y.length, fraction: count / Math.max(y.length, 1), flagged: count > 0 };
}

export interface RandomnessCheck {
  repeats: number;
  maxLogitDifference: number;
  predictionsChanged: boolean;
  flagged: boolean;
}

/**
 * Runs the model on the same inputs several times. A deterministic model gives the same logits; as
 * checks.py, logits are compared after scaling each row to unit l_2 norm, flagged above 1e-4.
 */
export async function randomnessCheck(
  model: Classifier,
  x: tf.Tensor4D,
  repeats = 5,
  tolerance = 1e-4,
): Promise<RandomnessCheck> {
  const outputs: tf.Tensor2D[] = [];
  const preds: Int32Array[] = [];
  for (let r = 0; r < repeats; r++) {
    const z = tf.tidy(() => model(x));
    preds.push(await predictions(z));
    outputs.push(tf.tidy(() => tf.div(z, tf.add(tf.norm(z, 2, 1, true), 1e-10)) as tf.Tensor2D));
    z.dispose();
  }
  let maxDifference = 0;
  for (let a = 0; a < repeats; a++) {
    for (let b = a + 1; b < repeats; b++) {
      const d = tf.tidy(() => tf.max(tf.norm(tf.sub(outputs[a] as tf.Tensor2D, outputs[b] as tf.Tensor2D), 2, 1)));
      maxDifference = Math.max(maxDifference, (await d.data())[0] ?? 0);
      d.dispose();
    }
  }
  tf.dispose(outputs);
  const first = preds[0] ?? new Int32Array();
  const predictionsChanged = preds.some((p) => p.some((v, i) => v !== first[i]));
  return {
    repeats,
    maxLogitDifference: maxDifference,
    predictionsChanged,
    flagged: predictionsChanged || maxDifference > tolerance,
  };
}

export interface BlackBoxCheck {
  squareAccuracy: number;
  bestWhiteBoxAccuracy: number;
  flagged: boolean;
}

/**
 * The black-box Square attack should not beat the white-box attacks: flagged when the robust
 * accuracy after Square is below the lowest white-box accuracy by more than `tolerance` (0.2% as
 * checks.py). Takes AutoAttack's stages or explicit accuracies.
 */
export function blackBoxCheck(
  input: AutoAttackStage[] | { square: number; whiteBox: number[] },
  tolerance = 0.002,
): BlackBoxCheck | null {
  let squareAccuracy: number | undefined;
  let whiteBox: number[];
  if (Array.isArray(input)) {
    const ran = input.filter((s) => s.skipped === undefined);
    squareAccuracy = ran.find((s) => s.attack === 'square')?.robustAccuracy;
    whiteBox = ran.filter((s) => s.attack !== 'square').map((s) => s.robustAccuracy);
  } else {
    squareAccuracy = input.square;
    whiteBox = input.whiteBox;
  }
  if (squareAccuracy === undefined || whiteBox.length === 0) return null;
  const bestWhiteBoxAccuracy = Math.min(...whiteBox);
  return { squareAccuracy, bestWhiteBoxAccuracy, flagged: squareAccuracy < bestWhiteBoxAccuracy - tolerance };
}

export interface UnboundedEpsCheck {
  eps: number;
  accuracy: number;
  flagged: boolean;
}

/**
 * With a radius that covers the whole image box, a working gradient attack reaches (almost) 0%
 * accuracy; a model that keeps accuracy there is masking gradients (or constant). APGD-CE, 50
 * iterations, radius 1 (l_inf) or the box diagonal (l_2).
 */
export async function unboundedEpsCheck(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: { threat: ThreatModel; iterations?: number; maxAccuracy?: number; seed?: number },
): Promise<UnboundedEpsCheck> {
  const dims = x.shape[1] * x.shape[2] * x.shape[3];
  const eps = options.threat === 'linf' ? 1 : Math.sqrt(dims);
  const result = await apgd(model, x, labels, {
    threat: options.threat,
    eps,
    iterations: options.iterations ?? 50,
    seed: options.seed ?? 0,
  });
  result.xAdv.dispose();
  const accuracy = result.robust.filter(Boolean).length / Math.max(result.robust.length, 1);
  return { eps, accuracy, flagged: accuracy > (options.maxAccuracy ?? 0.01) };
}

/** Which check a gradient-masking warning comes from (the report keeps only the sentences). */
export interface MaskingWarning {
  kind: MaskingWarningKind;
  message: string;
}

export interface MaskingChecks {
  zeroGradient?: ZeroGradientCheck;
  randomness?: RandomnessCheck;
  blackBox?: BlackBoxCheck | null;
  unboundedEps?: UnboundedEpsCheck;
}

/** A sentence per flagged check, with the check it comes from. */
export function maskingWarnings(parts: MaskingChecks): MaskingWarning[] {
  const warnings: MaskingWarning[] = [];
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  if (parts.zeroGradient?.flagged) {
    warnings.push({
      kind: 'zero-gradient',
      message: `${parts.zeroGradient.count} of ${parts.zeroGradient.total} examples have an all-zero input gradient: gradient-based attacks cannot move them.`,
    });
  }
  if (parts.randomness?.flagged) {
    warnings.push({
      kind: 'randomness',
      message:
        'The model gives different outputs for the same input: it looks randomised; use an attack with expectation over transformation.',
    });
  }
  if (parts.blackBox?.flagged) {
    warnings.push({
      kind: 'black-box',
      message: `Square (black-box) lowered the robust accuracy to ${pct(parts.blackBox.squareAccuracy)}, below the white-box attacks' ${pct(parts.blackBox.bestWhiteBoxAccuracy)}: gradients may be masked.`,
    });
  }
  if (parts.unboundedEps?.flagged) {
    warnings.push({
      kind: 'unbounded-eps',
      message: `With an unbounded radius the attack still leaves ${pct(parts.unboundedEps.accuracy)} accuracy, where ~0% is expected.`,
    });
  }
  return warnings;
}

/** Collects the checks that were run into the shared report shape, with a sentence per warning. */
export function maskingReport(parts: MaskingChecks): GradientMaskingReport {
  return {
    ...(parts.zeroGradient ? { zeroGradient: parts.zeroGradient } : {}),
    ...(parts.randomness ? { randomness: parts.randomness } : {}),
    ...(parts.blackBox ? { blackBoxBelowWhiteBox: parts.blackBox } : {}),
    ...(parts.unboundedEps ? { unboundedEps: parts.unboundedEps } : {}),
    warnings: maskingWarnings(parts),
  };
}
