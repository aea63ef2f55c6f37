import type { AttackOutcome, NoEvidenceFlag, WorstCase } from '@shared/evaluation';

/** Natural accuracy this close to chance (or below it) measures nothing (issue 11: 2 points). */
export const CHANCE_MARGIN = 0.02;

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;

/**
 * The guard against a silent collapse: flags a model at chance, and an evaluation in which no counted
 * attack flipped a single example. Either way its robust accuracies are no evidence of robustness.
 */
export function noEvidenceFlags(input: {
  naturalAccuracy: number;
  numClasses: number;
  attacks: AttackOutcome[];
  worstCase: WorstCase | null;
}): NoEvidenceFlag[] {
  const flags: NoEvidenceFlag[] = [];
  const chance = 1 / input.numClasses;
  if (input.naturalAccuracy <= chance + CHANCE_MARGIN) {
    const headline = 'No evidence of robustness: the model is at chance';
    flags.push({
      kind: 'at-chance',
      headline,
      message:
        `${headline}. Natural accuracy ${pct(input.naturalAccuracy)} is within ` +
        `${CHANCE_MARGIN * 100} points of chance (1/${input.numClasses} = ${pct(chance)}) or below it, so its robust ` +
        'accuracies measure nothing. Check that fine-tuning converged (its accuracy curve) before reading them.',
    });
  }
  const counted = input.worstCase
    ? input.attacks.filter((a) => input.worstCase?.attacks.includes(a.key) && a.key !== 'natural')
    : [];
  if (
    input.naturalAccuracy > 0 &&
    counted.length > 0 &&
    counted.every((a) => a.flipped.count === 0 && a.robustAccuracy === a.cleanAccuracy)
  ) {
    const headline = 'No evidence of robustness: no attack flipped a single example';
    flags.push({
      kind: 'nothing-flipped',
      headline,
      message:
        `${headline}. Under ${counted.map((a) => a.label).join(', ')}, robust accuracy equals clean accuracy ` +
        `(${pct(input.naturalAccuracy)}). Real robustness still loses some ` +
        'examples; suspect an attack that does not reach the model (masked or zero gradients). See the gradient-masking ' +
        'checks, and check that accuracy falls as eps grows.',
    });
  }
  return flags;
}
