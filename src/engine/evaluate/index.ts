/** Robust evaluation (spec section 6): attacks, worst case, masking checks, flipped examples, corruptions; and prediction. */
export { evaluate, selectExamples, EvaluationCancelledError, type EvaluateOptions } from './evaluate';
export { planEvaluation, type EvaluationPlan, type PlannedAttack, type CorruptionPlan } from './plan';
export { EvaluatedClassifier } from './model';
export { predictLogits, type Prediction } from './predict';
