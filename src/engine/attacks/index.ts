/** The attack suite (spec section 6). Every attack: (model, x in [0, 1] NHWC, labels, options) -> AttackResult. */
export { epsFrom255, epsTo255, standardAutoAttack, AUTOATTACK_STANDARD_COMPONENTS } from '@shared/attack-config';
export type { AttackProgress, AttackResult, Classifier, CommonAttackOptions, Labels, ThreatModel } from './types';
export {
  fgsm,
  pgd,
  pgdFeature,
  featureDistance,
  crossEntropyPlusMi,
  type AttackObjective,
  type ObjectiveContext,
  type PgdOptions,
} from './pgd';
export {
  apgd,
  apgdTargeted,
  apgdCheckpoints,
  apgdHighestLoss,
  type ApgdOptions,
  type ApgdTrainingOptions,
  type ApgdTargetedOptions,
  type ApgdTargetedResult,
} from './apgd';
export { fabTargeted, type FabTargetedOptions, type FabResult } from './fab';
export { square, type SquareOptions, type SquareResult } from './square';
export { cwL2, type CwL2Options, type CwL2Result } from './cw';
export { autoAttack, type AutoAttackOptions, type AutoAttackResult } from './autoattack';
export {
  zeroGradientCheck,
  randomnessCheck,
  blackBoxCheck,
  unboundedEpsCheck,
  maskingReport,
  maskingWarnings,
  type MaskingChecks,
  type MaskingWarning,
  type ZeroGradientCheck,
  type RandomnessCheck,
  type BlackBoxCheck,
  type UnboundedEpsCheck,
} from './masking-checks';
export {
  runAttack,
  attackRunRecord,
  autoAttackRecord,
  type SingleAttackSpec,
  type RunAttackExtras,
  type RecordContext,
} from './run';
export { crossEntropyLoss, marginLoss, dlrLoss, dlrTargetedLoss, classificationMargin } from './losses';
