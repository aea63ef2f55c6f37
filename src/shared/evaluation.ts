import { z } from 'zod';
import { count, positive } from './zod-numbers';
import {
  AttackRunRecord,
  AutoAttackRecord,
  EvaluatedExamples,
  GradientMaskingReport,
  ReportWarning,
  ThreatModel,
} from './attack-config';
import { DatasetDescription, DatasetSource } from './dataset-config';
import { EVALUATION_ENGINES } from './evaluation-engine';
import { MiEstimator } from './mi-config';
import { ModelConfig } from './model-config';

/**
 * Robust evaluation (spec section 6): what to evaluate and how (the request), and what came out
 * (the report). Epsilons and step sizes in a request are in 1/255 units (`eps 8` is 8/255), as the
 * UI and CLI speak; the report records both units. Every number in a report carries its protocol.
 */

export const EVALUATION_FORMAT = 'mimir-evaluation';
export const EVALUATION_VERSION = 1;
export const EVALUATION_REPORT_FILE = 'report.json';
/** Sub-folder of the report's folder holding the flipped examples' PNG strips. */
export const FLIPPED_IMAGES_DIR = 'flipped';

/** Implementation versions of the parts that are not attacks; bump when the numbers can change. */
export const EVALUATION_VERSIONS = {
  natural: 'natural/1',
  corruptions: 'corruptions/1',
  worstCase: 'worst-case/1',
} as const;

// ---- corruptions ---------------------------------------------------------------------------------

export const CORRUPTION_TYPES = [
  'gaussian-noise',
  'shot-noise',
  'impulse-noise',
  'defocus-blur',
  'gaussian-blur',
  'contrast',
  'brightness',
  'jpeg',
  'pixelate',
] as const;
export const CorruptionType = z.enum(CORRUPTION_TYPES, {
  error: `corruption must be one of ${CORRUPTION_TYPES.join(', ')}`,
});
export type CorruptionType = z.infer<typeof CorruptionType>;

/**
 * Which severity tables (Hendrycks & Dietterich's generation scripts): CIFAR-10-C (32 px),
 * Tiny-ImageNet-C (64 px) or ImageNet-C (224 px). 'auto' picks by image size: up to 32 px CIFAR-10-C,
 * up to 64 px Tiny-ImageNet-C, larger ImageNet-C.
 */
export const CORRUPTION_TABLES = ['cifar10', 'tiny-imagenet', 'imagenet'] as const;
export const CorruptionTable = z.enum(CORRUPTION_TABLES);
export type CorruptionTable = z.infer<typeof CorruptionTable>;

export const Severity = z
  .number({ error: 'severity must be a number' })
  .int('severity must be a whole number')
  .min(1, 'severity must be 1 to 5')
  .max(5, 'severity must be 1 to 5');

// ---- the request -----------------------------------------------------------------------------------

/** The attacks and measurements an evaluation can run, by their request names. */
export const EVALUATION_ATTACKS = [
  'natural',
  'pgd20',
  'pgd',
  'autoattack',
  'apgd-ce',
  'apgd-t',
  'fab-t',
  'square',
  'cw',
  'pgd-mi',
  'pgd-fea',
  'corruptions',
] as const;
export type EvaluationAttackName = (typeof EVALUATION_ATTACKS)[number];

export const NaturalRequest = z.object({ attack: z.literal('natural') });
/**
 * Which iterate of PGD-k counts: 'best', per example a misclassified iterate where one was visited
 * (the stronger protocol, default); 'last', the final iterate only (torchattacks, the paper's tables).
 */
export const PGD_ITERATES = ['best', 'last'] as const;
export const PgdIterate = z.enum(PGD_ITERATES, { error: "keep must be 'best' or 'last'" });
export type PgdIterate = z.infer<typeof PgdIterate>;
/** PGD-20 as the paper: 20 steps of 2/255 (l_inf; eps / 4 for l_2), random start, 1 restart. */
export const Pgd20Request = z.object({ attack: z.literal('pgd20'), keep: PgdIterate.default('best') });
export const PgdRequest = z.object({
  attack: z.literal('pgd'),
  keep: PgdIterate.default('best'),
  steps: count('steps'),
  /** Step size in 1/255 units; default 2 (l_inf) or eps / 4 (l_2). */
  alpha: positive('alpha').optional(),
  restarts: count('restarts').default(1),
  randomStart: z.boolean().default(true),
});
/** AutoAttack 'standard' (APGD-CE, APGD-T, FAB-T, Square with the RobustBench budgets). */
export const AutoAttackRequest = z.object({ attack: z.literal('autoattack') });
export const ApgdCeRequest = z.object({
  attack: z.literal('apgd-ce'),
  iterations: count('iterations').default(100),
  restarts: count('restarts').default(1),
});
/** APGD-T's and FAB-T's budget, AutoAttack's by default: 100 iterations against each of 9 targets. */
const targetedBudget = {
  iterations: count('iterations').default(100),
  targets: count('targets').default(9),
};
export const ApgdTRequest = z.object({ attack: z.literal('apgd-t'), ...targetedBudget });
export const FabTRequest = z.object({ attack: z.literal('fab-t'), ...targetedBudget });
export const SquareRequest = z.object({
  attack: z.literal('square'),
  queries: count('queries').default(5000),
  pInit: z.number().gt(0).max(1).default(0.8),
});
/**
 * Carlini-Wagner. `norm: 'l2'`: CW-l2 with the constant c (Table V: c = 1), Adam `steps`; robust
 * accuracy counts every example it fails to flip at any distance, and under an l_2 threat model also
 * within eps. `norm: 'linf'`: PGD on the CW margin loss within the l_inf eps-ball (20 steps of 2/255).
 * Without `norm`: l_2 and, under an l_inf threat model, also l_inf.
 */
export const CwRequest = z.object({
  attack: z.literal('cw'),
  norm: z.enum(['l2', 'linf']).optional(),
  c: positive('c').default(1),
  /** CW-l2: Adam steps (default 100); CW-linf: PGD steps (default 20). */
  steps: count('steps').optional(),
  learningRate: positive('learningRate').default(0.01),
});
/** PGD-MI (Table XI): maximise CE(x + delta, y) + lambda * MI(x + delta, features), 100 steps. */
export const PgdMiRequest = z.object({
  attack: z.literal('pgd-mi'),
  steps: count('steps').default(100),
  /** Default 1e-5, MIMIR's pre-training lambda (Table VIII), which the adversary is assumed to know. */
  lambda: z.number().finite().default(1e-5),
  /** The authors' PGD-MI uses hsic_normalized_cca (nhsic), as their pre-training does. */
  estimator: MiEstimator.default('nhsic'),
  /**
   * The classifier block whose tokens MI takes (Table XXI's layers), counted from 1; absent or
   * 'last': the last block's (the authors' forward_features).
   */
  block: z
    .union([z.literal('last'), z.number().int('block must be a whole number').min(1, 'block counts from 1')])
    .optional(),
  /** Step size in 1/255 units; default 2 (l_inf) or eps / 4 (l_2). */
  alpha: positive('alpha').optional(),
});
/** PGD-fea (Table XI): maximise ||f(x) - f(x + delta)||^2 on the backbone's features, 100 steps. */
export const PgdFeaRequest = z.object({
  attack: z.literal('pgd-fea'),
  steps: count('steps').default(100),
  alpha: positive('alpha').optional(),
});
export const CorruptionsRequest = z.object({
  attack: z.literal('corruptions'),
  types: z
    .array(CorruptionType)
    .min(1)
    .default([...CORRUPTION_TYPES]),
  severities: z.array(Severity).min(1).default([1, 2, 3, 4, 5]),
  table: z.union([CorruptionTable, z.literal('auto')]).default('auto'),
});

export const AttackRequest = z.discriminatedUnion(
  'attack',
  [
    NaturalRequest,
    Pgd20Request,
    PgdRequest,
    AutoAttackRequest,
    ApgdCeRequest,
    ApgdTRequest,
    FabTRequest,
    SquareRequest,
    CwRequest,
    PgdMiRequest,
    PgdFeaRequest,
    CorruptionsRequest,
  ],
  { error: `attack must be one of ${EVALUATION_ATTACKS.join(', ')}` },
);
export type AttackRequest = z.infer<typeof AttackRequest>;
export type AttackRequestInput = z.input<typeof AttackRequest>;

export const ExampleSelection = z
  .object({
    /** How many examples of the split (capped at its size); with `ids`, their number. */
    count: count('n'),
    /**
     * 'first': indices 0..n-1; 'random': n distinct indices drawn with `seed`, in increasing order;
     * 'ids': exactly the split indices in `ids` (a fixed subset, e.g. RobustBench's 5,000 ImageNet images).
     */
    pick: z.enum(['first', 'random', 'ids']).default('first'),
    ids: z.array(z.number().int('example ids are whole numbers').min(0, 'example ids are >= 0')).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.pick === 'ids') {
      if (!s.ids || s.ids.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['ids'], message: "pick 'ids' needs the list of example ids in ids" });
      } else if (new Set(s.ids).size !== s.ids.length) {
        ctx.addIssue({ code: 'custom', path: ['ids'], message: 'an example id is listed twice' });
      } else if (s.count !== s.ids.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['count'],
          message: `count is ${s.count} but ids lists ${s.ids.length} examples: give count ${s.ids.length}`,
        });
      }
    } else if (s.ids !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['pick'], message: "ids is given: set pick to 'ids' to evaluate them" });
    }
  });
export type ExampleSelection = z.infer<typeof ExampleSelection>;

export const EvaluationRequest = z.object({
  /** A fine-tuning checkpoint directory (or a run folder whose `latest` names one). */
  checkpoint: z.string().min(1, 'checkpoint must name a checkpoint directory'),
  dataset: DatasetSource,
  examples: ExampleSelection,
  attacks: z.array(AttackRequest).min(1, 'give at least one attack (e.g. natural)'),
  threat: ThreatModel.default('linf'),
  /** Radius in 1/255 units (8 = 8/255). */
  eps: positive('eps').default(8),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  batchSize: count('batchSize').default(64),
  /** Gradient-masking checks (zero gradients, randomness, black box below white box, unbounded radius). */
  maskingChecks: z.boolean().default(true),
  /**
   * Which engine evaluates: absent, the checkpoint's encoder decides (PyTorch for the encoders only it runs,
   * evaluation-engine.ts); 'torch' runs natural accuracy, PGD and corruptions only (with the masking checks and flipped
   * images), and refuses other attacks by name.
   */
  engine: z.enum(EVALUATION_ENGINES, { error: "engine must be 'tfjs' or 'torch'" }).optional(),
  flipped: z
    .object({
      /** Flipped examples listed per attack. */
      list: z.number().int().min(0).default(50),
      /** Flipped examples written as PNG (clean, adversarial, perturbation) per attack. */
      images: z.number().int().min(0).default(8),
    })
    .prefault({}),
});
export type EvaluationRequest = z.infer<typeof EvaluationRequest>;
export type EvaluationRequestInput = z.input<typeof EvaluationRequest>;

// ---- the report ------------------------------------------------------------------------------------

/** What one number was measured with (spec section 6: every result records its protocol). */
export const Protocol = z.object({
  /** null for natural accuracy and corruptions, which have no threat model. */
  threat: ThreatModel.nullable(),
  /** Radius in [0, 1] pixel units and in 1/255 units; null where there is none (natural, CW-l2's unbounded count). */
  eps: z.number().nullable(),
  eps255: z.number().nullable(),
  attack: z.string(),
  /** Implementation version (ATTACK_VERSIONS / EVALUATION_VERSIONS). */
  implementation: z.string(),
  steps: z.number().int().nullable(),
  restarts: z.number().int().nullable(),
  seed: z.number().int(),
  examples: EvaluatedExamples,
  backend: z.string(),
  /** Counted in the per-point worst case: within the requested threat model and radius. */
  inWorstCase: z.boolean(),
  /** PGD-family attacks: whether the per-example best iterate or the last one counted; null for others. */
  iterate: PgdIterate.nullable().default(null),
});
export type Protocol = z.infer<typeof Protocol>;

export const FlippedExample = z.object({
  /** Index in the evaluated split. */
  index: z.number().int().min(0),
  label: z.number().int().min(0),
  cleanPrediction: z.number().int().min(0),
  adversarialPrediction: z.number().int().min(0),
});
export type FlippedExample = z.infer<typeof FlippedExample>;

export const FlippedImages = z.object({
  /** File names in the report's `flipped/` folder: one PNG strip each, the examples left to right. */
  clean: z.string(),
  adversarial: z.string(),
  perturbation: z.string(),
  /** Split indices of the examples in the strips, left to right. */
  indices: z.array(z.number().int().min(0)),
  imageSize: z.number().int().positive(),
  /** The perturbation strip shows 0.5 + scale * delta, clipped to [0, 1]. */
  perturbationScale: z.number().positive(),
});
export type FlippedImages = z.infer<typeof FlippedImages>;

export const AttackOutcome = z.object({
  /** Unique within the report, e.g. 'pgd20', 'autoattack', 'cw-l2', 'cw-linf'. */
  key: z.string(),
  /** Human label, e.g. 'PGD-20', 'AutoAttack (standard)'. */
  label: z.string(),
  cleanAccuracy: z.number().min(0).max(1),
  robustAccuracy: z.number().min(0).max(1),
  /** CW-l2 under an l_2 threat model: accuracy counting only adversarial examples within eps. */
  robustAccuracyWithinEps: z.number().min(0).max(1).optional(),
  protocol: Protocol,
  /** The attack's full record (spec, per-example outcome, query counts); absent for natural accuracy. */
  record: z.union([AttackRunRecord, AutoAttackRecord]).optional(),
  warnings: z.array(ReportWarning),
  flipped: z.object({
    /** Examples the model got right that the attack turned wrong. */
    count: z.number().int().min(0),
    /** The first `flipped.list` of them, in evaluation order. */
    listed: z.array(FlippedExample),
    images: FlippedImages.nullable(),
  }),
  durationMs: z.number().min(0),
});
export type AttackOutcome = z.infer<typeof AttackOutcome>;

export const WorstCase = z.object({
  /** Share of examples that every counted attack left correctly classified. */
  robustAccuracy: z.number().min(0).max(1),
  /** Keys of the attacks counted (those within the threat model and radius). */
  attacks: z.array(z.string()),
  /** Per example (in `examples.ids` order): 'clean', the first counted attack that broke it, or null. */
  brokenBy: z.array(z.string().nullable()),
  implementation: z.string(),
});
export type WorstCase = z.infer<typeof WorstCase>;

export const CorruptionCell = z.object({
  type: CorruptionType,
  severity: Severity,
  accuracy: z.number().min(0).max(1),
});
export type CorruptionCell = z.infer<typeof CorruptionCell>;

export const CorruptionReport = z.object({
  table: CorruptionTable,
  implementation: z.string(),
  seed: z.number().int(),
  examples: EvaluatedExamples,
  backend: z.string(),
  cells: z.array(CorruptionCell),
  /** Mean accuracy over severities, per type. */
  meanByType: z.record(z.string(), z.number()),
  /** Mean over every cell. */
  mean: z.number(),
  durationMs: z.number().min(0),
});
export type CorruptionReport = z.infer<typeof CorruptionReport>;

export const EvaluatedModel = z.object({
  checkpoint: z.string(),
  /** The fine-tuning method that produced it ('pgd-at', 'dbat', ...), when the checkpoint says. */
  method: z.string().nullable(),
  modelConfig: ModelConfig,
  numClasses: z.number().int().positive(),
  classNames: z.array(z.string()),
});
export type EvaluatedModel = z.infer<typeof EvaluatedModel>;

/**
 * Why a report's numbers are no evidence of robustness (issue 11), shown before them:
 * 'at-chance': natural accuracy within 2 points of chance (1 / classes) or below it, so robust
 * accuracies measure nothing; 'nothing-flipped': every counted attack left every correctly
 * classified example correct (robust = clean accuracy, zero flipped), which points at an attack that
 * does not reach the model rather than at robustness. AutoAttack's own checks catch neither.
 */
export const NO_EVIDENCE_KINDS = ['at-chance', 'nothing-flipped'] as const;
export const NoEvidenceFlag = z.object({
  kind: z.enum(NO_EVIDENCE_KINDS),
  /** The short form, e.g. "No evidence of robustness: the model is at chance". */
  headline: z.string(),
  /** The headline, then what was measured and what to check. */
  message: z.string(),
});
export type NoEvidenceFlag = z.infer<typeof NoEvidenceFlag>;

export const EvaluationReport = z.object({
  format: z.literal(EVALUATION_FORMAT),
  version: z.literal(EVALUATION_VERSION),
  createdAt: z.iso.datetime(),
  backend: z.string(),
  model: EvaluatedModel,
  dataset: DatasetDescription,
  request: EvaluationRequest,
  threat: ThreatModel,
  eps: z.number(),
  eps255: z.number(),
  examples: EvaluatedExamples.extend({ pick: z.enum(['first', 'random', 'ids']), seed: z.number().int() }),
  naturalAccuracy: z.number().min(0).max(1),
  attacks: z.array(AttackOutcome),
  worstCase: WorstCase.nullable(),
  /** Gradient-masking checks, run on the first batch (`examples` says which). */
  masking: GradientMaskingReport.extend({ examples: EvaluatedExamples }).nullable(),
  corruptions: CorruptionReport.nullable(),
  /** Empty when the numbers can stand; otherwise why they are no evidence of robustness. */
  noEvidence: z.array(NoEvidenceFlag).default([]),
  durationMs: z.number().min(0),
});
export type EvaluationReport = z.infer<typeof EvaluationReport>;

/**
 * The attack list a command line gives (`natural,pgd20,autoattack,cw,pgd-mi,pgd-fea,corruptions`):
 * each word with its defaults; `pgd` takes steps as `pgd:50`; `cw-l2` and `cw-linf` pick one CW.
 */
export function attacksFromWords(words: string): AttackRequestInput[] {
  const plain: Record<string, AttackRequestInput> = {
    natural: { attack: 'natural' },
    pgd20: { attack: 'pgd20' },
    autoattack: { attack: 'autoattack' },
    'apgd-ce': { attack: 'apgd-ce' },
    'apgd-t': { attack: 'apgd-t' },
    'fab-t': { attack: 'fab-t' },
    square: { attack: 'square' },
    cw: { attack: 'cw' },
    'cw-l2': { attack: 'cw', norm: 'l2' },
    'cw-linf': { attack: 'cw', norm: 'linf' },
    'pgd-mi': { attack: 'pgd-mi' },
    'pgd-fea': { attack: 'pgd-fea' },
    corruptions: { attack: 'corruptions' },
  };
  const out: AttackRequestInput[] = [];
  for (const raw of words.split(',')) {
    const word = raw.trim();
    if (word === '') continue;
    const pgd = /^pgd(?::(\d+))?$/.exec(word);
    const known = plain[word];
    if (known) out.push(known);
    else if (pgd) out.push({ attack: 'pgd', steps: Number(pgd[1] ?? '20') });
    else throw new Error(`unknown attack "${word}": use ${[...Object.keys(plain), 'pgd:<steps>'].join(', ')}`);
  }
  if (out.length === 0) throw new Error('give at least one attack');
  return out;
}
