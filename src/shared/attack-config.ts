import { z } from 'zod';
import { count, positive } from './zod-numbers';

/**
 * Attack protocols and their results (spec section 6). Pure data: the engine runs a parsed spec,
 * the store records it next to the numbers, the UI shows it. Epsilons here are in [0, 1] pixel
 * units (the engine's); the UI and CLI speak 1/255 units and convert with `epsFrom255`.
 */

export const THREAT_MODELS = ['linf', 'l2'] as const;
export const ThreatModel = z.enum(THREAT_MODELS, { error: "threat model must be 'linf' or 'l2'" });
export type ThreatModel = z.infer<typeof ThreatModel>;

/** `eps 8` in the UI means 8/255 in pixel units. */
export function epsFrom255(units: number): number {
  return units / 255;
}

export function epsTo255(eps: number): number {
  return eps * 255;
}

/**
 * Implementation version of each attack. Bump an entry whenever a change can alter the numbers the
 * attack produces, so a stored result says which code made it.
 */
export const ATTACK_VERSIONS = {
  fgsm: 'fgsm/1',
  pgd: 'pgd/1',
  'pgd-mi': 'pgd-mi/1',
  'pgd-fea': 'pgd-fea/1',
  'apgd-ce': 'apgd/1',
  'apgd-dlr': 'apgd/1',
  'apgd-t': 'apgd-t/1',
  'fab-t': 'fab-t/1',
  square: 'square/1',
  'cw-l2': 'cw-l2/1',
  autoattack: 'autoattack/1',
} as const;
export type AttackName = keyof typeof ATTACK_VERSIONS;

const eps = positive('eps').describe('radius of the threat model in [0, 1] pixel units (8/255 for eps 8)');
const seed = z
  .number({ error: 'seed must be a number' })
  .int('seed must be a whole number')
  .min(0, 'seed must be at least 0')
  .max(0xffffffff, 'seed must fit in 32 bits')
  .default(0);
/** A norm-bounded attack's threat model and radius. */
const bounded = { threat: ThreatModel, eps };
const restarts = count('restarts').default(1);
const fraction = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .gt(0, `${what} must be above 0`)
    .max(1, `${what} must be at most 1`);

export const FgsmSpec = z.object({
  attack: z.literal('fgsm'),
  ...bounded,
  seed,
});
export type FgsmSpec = z.infer<typeof FgsmSpec>;

const pgdFields = {
  ...bounded,
  steps: count('steps'),
  /** Step size in [0, 1] pixel units (2/255 in the paper's PGD-20). */
  alpha: positive('alpha'),
  randomStart: z.boolean().default(true),
  restarts,
  /** Return the best point found (a misclassified one if any, else the highest loss) or the last iterate. */
  keep: z.enum(['best', 'last']).default('best'),
  seed,
};

/** PGD on cross-entropy; with `loss: 'margin'` it is the CW l_inf attack (PGD on the CW margin loss). */
export const PgdSpec = z.object({
  attack: z.literal('pgd'),
  ...pgdFields,
  loss: z.enum(['ce', 'margin']).default('ce'),
});
export type PgdSpec = z.infer<typeof PgdSpec>;

/** Adaptive PGD-MI (Table XI): maximises CE + lambda * MI(x + delta, features). */
export const PgdMiSpec = z.object({
  attack: z.literal('pgd-mi'),
  ...pgdFields,
  lambda: z.number({ error: 'lambda must be a number' }).finite(),
  /** Which MI estimator the objective used, e.g. 'hsic'. */
  estimator: z.string().min(1),
  /** The block (from 1) whose tokens MI took; absent: the last. */
  block: z.number().int().min(1).optional(),
});
export type PgdMiSpec = z.infer<typeof PgdMiSpec>;

/** Adaptive PGD-fea (Table XI): maximises ||f_e(x) - f_e(x + delta)||^2 on the backbone's features. */
export const PgdFeaSpec = z.object({
  attack: z.literal('pgd-fea'),
  ...pgdFields,
});
export type PgdFeaSpec = z.infer<typeof PgdFeaSpec>;

const rho = fraction('rho')
  .default(0.75)
  .describe('APGD: halve the step if the loss rose in at most this share of steps');

export const ApgdSpec = z.object({
  attack: z.enum(['apgd-ce', 'apgd-dlr']),
  ...bounded,
  iterations: count('iterations'),
  restarts,
  rho,
  seed,
});
export type ApgdSpec = z.infer<typeof ApgdSpec>;

/** APGD-T's and FAB-T's budget. */
const targetedBudget = {
  iterations: count('iterations'),
  /** Target classes: the 2nd..(targets+1)-th highest clean logits; capped at classes - 1 when run. */
  targets: count('targets'),
  restarts,
};

export const ApgdTargetedSpec = z.object({ attack: z.literal('apgd-t'), ...bounded, ...targetedBudget, rho, seed });
export type ApgdTargetedSpec = z.infer<typeof ApgdTargetedSpec>;

export const FabTargetedSpec = z.object({
  attack: z.literal('fab-t'),
  ...bounded,
  ...targetedBudget,
  alphaMax: fraction('alphaMax').default(0.1),
  eta: positive('eta').default(1.05),
  beta: fraction('beta').default(0.9),
  seed,
});
export type FabTargetedSpec = z.infer<typeof FabTargetedSpec>;

export const SquareSpec = z.object({
  attack: z.literal('square'),
  ...bounded,
  queries: count('queries'),
  pInit: fraction('pInit').default(0.8),
  restarts,
  seed,
});
export type SquareSpec = z.infer<typeof SquareSpec>;

/**
 * Carlini-Wagner l_2 with a fixed constant c (no binary search): minimise ||delta||^2 + c * f(x + delta)
 * with Adam in tanh space. `eps`, when given, also reports success within an l_2 ball of that radius.
 */
export const CwL2Spec = z.object({
  attack: z.literal('cw-l2'),
  c: positive('c').default(1),
  kappa: z.number().min(0, 'kappa must be at least 0').default(0),
  steps: count('steps').default(100),
  learningRate: positive('learningRate').default(0.01),
  eps: eps.optional(),
  seed,
});
export type CwL2Spec = z.infer<typeof CwL2Spec>;

/** The attacks AutoAttack can compose. */
export const AutoAttackComponent = z.discriminatedUnion('attack', [
  ApgdSpec.omit({ threat: true, eps: true, seed: true }),
  ApgdTargetedSpec.omit({ threat: true, eps: true, seed: true }),
  FabTargetedSpec.omit({ threat: true, eps: true, seed: true }),
  SquareSpec.omit({ threat: true, eps: true, seed: true }),
]);
export type AutoAttackComponent = z.infer<typeof AutoAttackComponent>;

/**
 * AutoAttack "standard" (Croce & Hein 2020, RobustBench) for l_inf and l_2: exactly these attacks,
 * budgets and order. Anything else is a "custom" AutoAttack and is labelled so.
 */
export const AUTOATTACK_STANDARD_COMPONENTS: readonly AutoAttackComponent[] = Object.freeze([
  Object.freeze({ attack: 'apgd-ce', iterations: 100, restarts: 1, rho: 0.75 }),
  Object.freeze({ attack: 'apgd-t', iterations: 100, targets: 9, restarts: 1, rho: 0.75 }),
  Object.freeze({ attack: 'fab-t', iterations: 100, targets: 9, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9 }),
  Object.freeze({ attack: 'square', queries: 5000, pInit: 0.8, restarts: 1 }),
] as const);

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** True when the attacks, their order and every budget equal AutoAttack 'standard'. */
export function isStandardComposition(components: readonly AutoAttackComponent[]): boolean {
  return canonical(components) === canonical(AUTOATTACK_STANDARD_COMPONENTS);
}

export const AutoAttackSpec = z
  .object({
    attack: z.literal('autoattack'),
    version: z.enum(['standard', 'custom']),
    ...bounded,
    seed,
    components: z.array(AutoAttackComponent).min(1, 'AutoAttack needs at least one attack'),
  })
  .superRefine((spec, ctx) => {
    if (spec.version === 'standard' && !isStandardComposition(spec.components)) {
      ctx.addIssue({
        code: 'custom',
        path: ['components'],
        message: "these attacks or budgets differ from AutoAttack 'standard'; label the run version 'custom'",
      });
    }
  });
export type AutoAttackSpec = z.infer<typeof AutoAttackSpec>;

export function standardAutoAttack(threat: ThreatModel, epsilon: number, seedValue = 0): AutoAttackSpec {
  return AutoAttackSpec.parse({
    attack: 'autoattack',
    version: 'standard',
    threat,
    eps: epsilon,
    seed: seedValue,
    components: AUTOATTACK_STANDARD_COMPONENTS.map((c) => ({ ...c })),
  });
}

export const AttackSpec = z.union([
  FgsmSpec,
  PgdSpec,
  PgdMiSpec,
  PgdFeaSpec,
  ApgdSpec,
  ApgdTargetedSpec,
  FabTargetedSpec,
  SquareSpec,
  CwL2Spec,
  AutoAttackSpec,
]);
export type AttackSpec = z.infer<typeof AttackSpec>;
/** A spec as written by a caller: fields with defaults may be left out. */
export type AttackSpecInput = z.input<typeof AttackSpec>;
export type AutoAttackSpecInput = z.input<typeof AutoAttackSpec>;

/** A short human label: "PGD-20", "CW-linf", "AutoAttack (standard)". */
export function attackLabel(spec: AttackSpec): string {
  switch (spec.attack) {
    case 'pgd':
      return spec.loss === 'margin' ? `CW-linf (PGD-${spec.steps})` : `PGD-${spec.steps}`;
    case 'pgd-mi':
      return `PGD-MI-${spec.steps}`;
    case 'pgd-fea':
      return `PGD-fea-${spec.steps}`;
    case 'autoattack':
      return `AutoAttack (${spec.version})`;
    case 'cw-l2':
      return `CW-l2 (c = ${spec.c})`;
    default:
      return spec.attack.toUpperCase();
  }
}

/** Which examples were evaluated: indices into the evaluated split, in the order they were attacked. */
export const EvaluatedExamples = z.object({
  count: z.number().int().min(0),
  ids: z.array(z.number().int().min(0)),
  /** e.g. "cifar10/test"; the evaluation code fills it. */
  source: z.string().optional(),
});
export type EvaluatedExamples = z.infer<typeof EvaluatedExamples>;

export const PerExampleOutcome = z.object({
  /** Still correctly classified after the attack. */
  robust: z.array(z.boolean()),
  /** z_y - max_{i != y} z_i at the returned point. */
  margin: z.array(z.number()),
  /** Size of the perturbation in the threat model's norm (l_2 for CW). */
  norm: z.array(z.number()),
});
export type PerExampleOutcome = z.infer<typeof PerExampleOutcome>;

const accuracy = z.number().min(0).max(1);

/** What an attack's record says besides its spec: the code and backend that ran it, on which examples, with what result. */
const recordHeader = {
  implementation: z.string(),
  backend: z.string(),
  examples: EvaluatedExamples,
  cleanAccuracy: accuracy,
  robustAccuracy: accuracy,
};

export const AttackRunRecord = z.object({
  spec: AttackSpec,
  ...recordHeader,
  /** CW-l2 only: accuracy counting only adversarial examples within the given eps. */
  robustAccuracyWithinEps: accuracy.optional(),
  perExample: PerExampleOutcome.optional(),
  gradientCalls: z.number().int().min(0),
  forwardCalls: z.number().int().min(0),
  durationMs: z.number().min(0),
});
export type AttackRunRecord = z.infer<typeof AttackRunRecord>;

export const AutoAttackStage = z.object({
  attack: z.enum(['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'square']),
  /** Robust accuracy over all evaluated examples after this attack (worst case so far). */
  robustAccuracy: accuracy,
  /** Examples this attack broke (that earlier attacks had not). */
  broken: z.number().int().min(0),
  attacked: z.number().int().min(0),
  /** Targets actually used (the nominal count capped at classes - 1). */
  targetsUsed: z.number().int().min(0).optional(),
  /** Why an attack did not run at all, e.g. too few classes for the targeted DLR loss. */
  skipped: z.string().optional(),
  durationMs: z.number().min(0),
});
export type AutoAttackStage = z.infer<typeof AutoAttackStage>;

export const AutoAttackRecord = z.object({
  spec: AutoAttackSpec,
  ...recordHeader,
  stages: z.array(AutoAttackStage),
  /** Per example: 'clean' (misclassified without attack), the attack that broke it, or null (robust). */
  brokenBy: z.array(z.string().nullable()),
  /** Departures from the spec forced by the model, e.g. a skipped APGD-T on a 3-class model. */
  deviations: z.array(z.string()),
  durationMs: z.number().min(0),
});
export type AutoAttackRecord = z.infer<typeof AutoAttackRecord>;

/**
 * What raised a warning in an evaluation report: a gradient-masking check (spec section 6), AutoAttack
 * departing from its protocol, an unbounded CW-l2, a batch-dependent PGD-MI; `other` is a warning of a
 * report written before warnings had kinds.
 */
export const ReportWarningKind = z.enum([
  'zero-gradient',
  'randomness',
  'black-box',
  'unbounded-eps',
  'autoattack-deviation',
  'cw-unbounded',
  'batch-statistic',
  'other',
]);
export type ReportWarningKind = z.infer<typeof ReportWarningKind>;
export type MaskingWarningKind = Extract<
  ReportWarningKind,
  'zero-gradient' | 'randomness' | 'black-box' | 'unbounded-eps'
>;

/** A warning with the check or rule that raised it; a bare string (older reports) reads as kind `other`. */
export const ReportWarning = z.preprocess(
  (value) => (typeof value === 'string' ? { kind: 'other', message: value } : value),
  z.object({ kind: ReportWarningKind, message: z.string() }),
);
export type ReportWarning = z.infer<typeof ReportWarning>;

/** Gradient-masking warnings shown next to robust accuracies (spec section 6). */
export const GradientMaskingReport = z.object({
  zeroGradient: z
    .object({
      count: z.number().int().min(0),
      total: z.number().int().min(0),
      fraction: z.number(),
      flagged: z.boolean(),
    })
    .optional(),
  randomness: z
    .object({
      repeats: z.number().int(),
      maxLogitDifference: z.number(),
      predictionsChanged: z.boolean(),
      flagged: z.boolean(),
    })
    .optional(),
  blackBoxBelowWhiteBox: z
    .object({ squareAccuracy: z.number(), bestWhiteBoxAccuracy: z.number(), flagged: z.boolean() })
    .optional(),
  unboundedEps: z.object({ eps: z.number(), accuracy: z.number(), flagged: z.boolean() }).optional(),
  warnings: z.array(ReportWarning),
});
export type GradientMaskingReport = z.infer<typeof GradientMaskingReport>;
