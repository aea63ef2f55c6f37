/**
 * Adversarial fine-tuning (spec section 5): classifiers from a pre-training checkpoint's encoder or
 * from scratch, trained with natural, PGD-AT, Fast-AT, TRADES, MART, Generalist, DBAT or APGD-AT;
 * and the loader of the resulting checkpoints for evaluation.
 */
export { loadClassifierCheckpoint, type ClassifierCheckpoint } from './classifier-checkpoint';
export { resolveCheckpointPath, RUN_CHECKPOINTS_DIR } from './checkpoint-path';
export { classScores, mergeDbatLogits } from './outputs';
