/**
 * Adversarial fine-tuning (spec section 5): classifiers from a pre-training checkpoint's encoder or
 * from scratch, trained with natural, PGD-AT, Fast-AT, TRADES, MART, Generalist, DBAT or APGD-AT;
 * and the loader of the resulting checkpoints for evaluation.
 */
export { loadClassifierCheckpoint, type ClassifierCheckpoint } from './classifier-checkpoint';
export { resolveCheckpointPath, RUN_CHECKPOINTS_DIR } from './checkpoint-path';
export { classScores, mergeDbatLogits } from './outputs';
export {
  correctCount,
  dbatLoss,
  dbatTargets,
  klFromLogits,
  martLoss,
  smoothTargets,
  softCrossEntropy,
  tradesLoss,
} from './losses';
export { ascend, crossEntropyObjective, NORMAL_START_STD, type AdversaryOptions } from './adversary';
export {
  applyOp,
  mixBatch,
  oneHotRows,
  opMagnitude,
  randAugmentBatch,
  sampleBeta,
  sampleGamma,
  RAND_AUGMENT_OPS,
  type MixedBatch,
  type RandAugmentOp,
} from './augment';
export { FinetuneSourceError, initialClassifier, scratchModelConfig, type InitialClassifier } from './init';
export { attackBudget, evalClassifier, finetuneStep, type StepContext, type StepResult, type TrainBatch } from './step';
export {
  GeneralistTrainer,
  emaDecayAt,
  isSyncEpoch,
  robustWeightAt,
  GENERALIST_PREFIXES,
  type GeneralistStepResult,
} from './generalist';
export { heldOutAccuracy, type HeldOutOptions, type HeldOutResult } from './held-out';
export { runFinetuning, GENERALIST_STATE_DIR, FINETUNE_CONFIG_FILE, type FinetuneRunOptions } from './trainer';
