import { z } from 'zod';
import { configObject } from './config-object';
import { RunEngine } from './engine-choice';
import { epsFrom255, ThreatModel } from './attack-config';
import {
  AugmentationConfig,
  DatasetSource,
  ExtraData,
  FINETUNE_AUGMENTATION,
  TrainingFraction,
} from './dataset-config';
import { scaledLearningRate } from './learning-rate';
import { checkModelEngine, ModelConfig, ModelPreset } from './model-config';

/**
 * A fine-tuning run (spec section 5, paper Table I and Table XVI): a classifier made from a MIMIR /
 * MAE pre-training checkpoint's encoder (or from scratch: the paper's End2End baseline), trained
 * with natural or adversarial training. Epsilons and step sizes are in 1/255 units, as the UI and
 * CLI speak (`eps: 8` means 8/255), for l_2 as well (l_2 eps 0.5 is `eps: 127.5`).
 */

export const FINETUNE_METHODS = [
  'natural',
  'pgd-at',
  'fast-at',
  'trades',
  'mart',
  'generalist',
  'dbat',
  'apgd-at',
] as const;
export const FinetuneMethod = z.enum(FINETUNE_METHODS, {
  error: `method must be one of ${FINETUNE_METHODS.map((m) => `'${m}'`).join(', ')}`,
});
export type FinetuneMethod = z.infer<typeof FinetuneMethod>;

/** Methods whose training pass sees adversarial examples (all but natural). */
export function isAdversarialMethod(method: FinetuneMethod): boolean {
  return method !== 'natural';
}

const units255 = (what: string) =>
  z
    .number({ error: `${what} must be a number (in 1/255 units)` })
    .positive(`${what} must be > 0`)
    .max(255 * 64, `${what} is in 1/255 units: ${what} 8 means 8/255`);
const fraction = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .min(0, `${what} must be >= 0`)
    .max(1, `${what} must be <= 1`);
const count = (what: string, min = 1) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(min, `${what} must be >= ${min}`);

export const FinetuneSource = z.discriminatedUnion(
  'kind',
  [
    configObject({
      kind: z.literal('pretrained'),
      /** A pre-training checkpoint directory, its checkpoints/ folder, or the pre-training run's folder (newest good one). */
      checkpoint: z.string({ error: 'source.checkpoint must be a path' }).trim().min(1, 'source.checkpoint is empty'),
    }),
    configObject({
      kind: z.literal('scratch'),
      /** A preset (sized for the dataset's images) or a full model configuration. */
      model: z.union([ModelPreset, ModelConfig]).default('vit-s'),
    }),
  ],
  {
    error:
      "source must be {kind: 'pretrained', checkpoint: <path>} or {kind: 'scratch', model: <preset or model config>}",
  },
);
export type FinetuneSource = z.infer<typeof FinetuneSource>;

export const FinetuneThreat = configObject({
  norm: ThreatModel.default('linf'),
  /** Radius in 1/255 units; default 8 (CIFAR-10, Tiny-ImageNet), 4 for ImageNet-sized images (>= 160 px). */
  eps: units255('threat.eps').optional(),
});
export type FinetuneThreat = z.infer<typeof FinetuneThreat>;

/** The multi-step attack of pgd-at, trades, mart, dbat and Generalist's robust learner. */
export const FinetuneAttack = configObject({
  steps: count('attack.steps').max(1000).default(10),
  /** Step size in 1/255 units (2/255, the paper's). For l_2 it is the l_2 length of a step. */
  alpha: units255('attack.alpha').default(2),
  /** pgd-at and Generalist: start from a uniform point of the ball (Madry et al.). */
  randomStart: z.boolean().default(true),
});
export type FinetuneAttack = z.infer<typeof FinetuneAttack>;

export const FastAtSettings = configObject({
  /** One FGSM step of alphaFactor * eps from a uniform random start (Wong et al.: 1.25). */
  alphaFactor: z.number().positive('fastAt.alphaFactor must be > 0').max(4).default(1.25),
});

export const TradesSettings = configObject({
  beta: z.number().min(0, 'trades.beta must be >= 0').default(6),
});

export const MartSettings = configObject({
  beta: z.number().min(0, 'mart.beta must be >= 0').default(6),
});

/**
 * Generalist (Wang & Wang, CVPR 2023), as its official code (PKU-ML/Generalist main.py) does it:
 * each base learner has an exponential moving average (decay min(emaDecay, (s + 1) / (s + 10)) at
 * update s); the global model is an EMA, with the same decay, of robustWeight * EMA(robust) +
 * (1 - robustWeight) * EMA(natural); robustWeight stays at robustWeightStart until
 * mixRampStart * epochs, then falls linearly to robustWeightEnd at the last epoch (code: 1.0 until
 * 2/3 of the epochs, then down to 0.4). During every epoch k (1-based) with k >= syncStart * epochs
 * and k % syncEvery == 0, both base learners are set to the global model after each step (code:
 * epoch >= 75 of 120 and epoch % 5 == 0).
 */
export const GeneralistSettings = configObject({
  emaDecay: z.number().min(0).lt(1, 'generalist.emaDecay must be < 1').default(0.999),
  robustWeightStart: fraction('generalist.robustWeightStart').default(1),
  robustWeightEnd: fraction('generalist.robustWeightEnd').default(0.4),
  mixRampStart: fraction('generalist.mixRampStart').default(2 / 3),
  syncStart: fraction('generalist.syncStart').default(75 / 120),
  syncEvery: count('generalist.syncEvery').default(5),
});
export type GeneralistSettings = z.infer<typeof GeneralistSettings>;

export const DBAT_ATTACKS = ['targeted', 'targeted-ll', 'untargeted'] as const;
export const DBAT_MERGES = ['max', 'logsumexp'] as const;
export type DbatMerge = (typeof DBAT_MERGES)[number];

/**
 * DBAT (Levi & Kontorovich, USENIX Security 2024), as the authors' code (train_dbat.py, dbat.py)
 * does it: 2C outputs; the loss is CE over [clean; adversarial] with labels [y; y + C]. The adversary
 * starts at x + 0.001 N(0, 1) and runs targeted PGD towards a random class: one of the C real classes
 * other than y for the first realTargetEpochs share of the epochs (code: 20 of 200), then any of the
 * 2C classes except y and y + C ('targeted'); 'targeted-ll' aims at the least likely output,
 * 'untargeted' maximises CE of the merged scores. At test time class y scores
 * merge(z_y, z_{y+C}): 'max' is the code's torch.max(out[:, :C], out[:, C:]); 'logsumexp' adds the
 * two outputs' probabilities (softmax of it equals p_y + p_{y+C}).
 */
export const DbatSettings = configObject({
  attack: z
    .enum(DBAT_ATTACKS, { error: "dbat.attack must be 'targeted', 'targeted-ll' or 'untargeted'" })
    .default('targeted'),
  realTargetEpochs: fraction('dbat.realTargetEpochs').default(0.1),
  merge: z.enum(DBAT_MERGES, { error: "dbat.merge must be 'max' or 'logsumexp'" }).default('max'),
  /**
   * Label smoothing of DBAT's CE over 2C outputs: 0.5 unless set, as the authors' code (not the run's
   * labelSmoothing, 0.1); null: the run's labelSmoothing.
   */
  labelSmoothing: z.number().min(0).lt(1, 'dbat.labelSmoothing must be < 1').nullable().default(0.5),
});
export type DbatSettings = z.infer<typeof DbatSettings>;

export const ApgdAtSettings = configObject({
  /** APGD-CE iterations per training batch (a small number; the evaluation uses 100). As Singh et al.: every point attacked from x, trained on its highest-loss iterate. */
  steps: count('apgdAt.steps').max(1000).default(10),
  rho: z.number().gt(0).max(1).default(0.75),
});

/** torchvision's RandAugment: numOps random operations at magnitude bin `magnitude` of `bins`. */
export const RandAugmentConfig = configObject({
  numOps: count('randAugment.numOps').max(14).default(2),
  magnitude: count('randAugment.magnitude', 0).default(9),
  bins: count('randAugment.bins', 2).default(31),
});
export type RandAugmentConfig = z.infer<typeof RandAugmentConfig>;

/** timm's Mixup in batch mode (MAE fine-tuning: mixup 0.8, cutmix 1.0, switch 0.5), with soft labels. */
export const MixupConfig = configObject({
  /** Beta(alpha, alpha) for MixUp; 0 turns MixUp off. */
  mixupAlpha: z.number().min(0).default(0.8),
  /** Beta(alpha, alpha) for CutMix; 0 turns CutMix off. */
  cutmixAlpha: z.number().min(0).default(1),
  /** Probability that a batch is mixed at all. */
  prob: fraction('mixup.prob').default(1),
  /** With both on: probability of CutMix rather than MixUp for a batch. */
  switchProb: fraction('mixup.switchProb').default(0.5),
});
export type MixupConfig = z.infer<typeof MixupConfig>;

export const FinetuneOptimizer = configObject({
  /** Base learning rate; the run uses baseLr * batchSize / 256. Default 5e-3 (CIFAR-10, built-in), 1e-3 otherwise. */
  baseLr: z.number().positive('optimizer.baseLr must be > 0').optional(),
  minLr: z.number().min(0).default(1e-6),
  weightDecay: z.number().min(0).default(0.05),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  warmupEpochs: z.number().min(0).default(10),
  /** Layer-wise lr decay: block i of depth d trains at layerDecay^(d - i) of the head's rate. */
  layerDecay: z.number().gt(0).max(1).default(0.65),
  /** Clip the global gradient norm to this value; null: no clipping. */
  clipGrad: z.number().positive().nullable().default(null),
});
export type FinetuneOptimizer = z.infer<typeof FinetuneOptimizer>;

export const HeldOutSettings = configObject({
  /** Images of the test split (its first `size`) measured after each epoch; 0 turns it off. */
  size: count('heldOut.size', 0).default(256),
  /** PGD steps of the held-out robustness check (at the run's threat model and eps). */
  pgdSteps: count('heldOut.pgdSteps').default(10),
  /** Its step size in 1/255 units; default eps / 4 (2/255 at eps 8, the evaluation's PGD). */
  alpha: units255('heldOut.alpha').optional(),
  /** Measure every this many epochs (and always after the last). */
  every: count('heldOut.every').default(1),
});

const finetuneFields = {
  method: FinetuneMethod.default('pgd-at'),
  source: FinetuneSource,
  dataset: DatasetSource.prefault({ kind: 'builtin' }),
  /** Fine-tune on a seeded share of the training split; 1: all of it (the held-out checks use the test split). */
  trainFraction: TrainingFraction.prefault({}),
  /** Generated images mixed into every batch at a ratio (Table XVIII); absent: none. */
  extraData: ExtraData.optional(),
  augmentation: AugmentationConfig.default(FINETUNE_AUGMENTATION),
  randAugment: RandAugmentConfig.nullable().default(null),
  mixup: MixupConfig.nullable().default(null),
  threat: FinetuneThreat.prefault({}),
  attack: FinetuneAttack.prefault({}),
  fastAt: FastAtSettings.prefault({}),
  trades: TradesSettings.prefault({}),
  mart: MartSettings.prefault({}),
  generalist: GeneralistSettings.prefault({}),
  dbat: DbatSettings.prefault({}),
  apgdAt: ApgdAtSettings.prefault({}),
  epochs: count('epochs').default(100),
  batchSize: count('batchSize', 2).default(128),
  optimizer: FinetuneOptimizer.prefault({}),
  dropPath: z.number().min(0).lt(1, 'dropPath must be < 1').default(0.1),
  labelSmoothing: z.number().min(0).lt(1, 'labelSmoothing must be < 1').default(0.1),
  /** Std of the fresh head's weights: 2e-5 (MAE fine-tuning) or 2e-2 (the authors' CIFAR code). */
  headInitStd: z.number().positive().default(2e-5),
  heldOut: HeldOutSettings.prefault({}),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  /** Save a checkpoint every this many epochs (and always at the end). */
  checkpointEvery: count('checkpointEvery').default(10),
  /** Keep this many recent checkpoints (the final one is always kept). */
  keepCheckpoints: count('keepCheckpoints').default(3),
  /** Emit a metrics event every this many steps. */
  logEvery: count('logEvery').default(1),
  /** Read the steps' metrics from the device every this many steps (absent: 1, or 8 on webgpu); every step is still reported. */
  metricsEvery: count('metricsEvery').optional(),
  /** The engine that trains the run; absent: tfjs. */
  engine: RunEngine.optional(),
};

function checkFinetune(c: z.infer<z.ZodObject<typeof finetuneFields>>, ctx: z.RefinementCtx): void {
  if (c.source.kind === 'scratch') checkModelEngine(c.source.model, c.engine, ctx, ['source', 'model']);
  const eps = c.threat.eps;
  if (eps !== undefined && c.threat.norm === 'linf' && c.attack.alpha > 4 * eps && isAdversarialMethod(c.method)) {
    ctx.addIssue({
      code: 'custom',
      path: ['attack', 'alpha'],
      message: `attack.alpha ${c.attack.alpha} is over 4x threat.eps ${eps}: a typo?`,
    });
  }
  if (c.mixup && c.mixup.mixupAlpha === 0 && c.mixup.cutmixAlpha === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['mixup'],
      message: 'mixup has mixupAlpha 0 and cutmixAlpha 0: set one above 0, or mixup: null to turn mixing off',
    });
  }
}

/** The fields of a fine-tuning config, unrefined (for extension). */
export const FinetuneConfigObject = configObject(finetuneFields);

export const FinetuneConfig = FinetuneConfigObject.superRefine(checkFinetune);
export type FinetuneConfig = z.infer<typeof FinetuneConfig>;
export type FinetuneConfigInput = z.input<typeof FinetuneConfig>;

/**
 * What a fine-tuning checkpoint's manifest.runConfig holds: the config with its dataset-dependent
 * defaults filled in (threat.eps, optimizer.baseLr), plus the classes the head was trained on.
 * The head has numClasses outputs, or 2 * numClasses for DBAT.
 */
export const FinetuneRecord = FinetuneConfigObject.extend({
  threat: FinetuneThreat.extend({ eps: units255('threat.eps') }),
  optimizer: FinetuneOptimizer.extend({ baseLr: z.number().positive('optimizer.baseLr must be > 0') }),
  numClasses: count('numClasses', 2),
  classNames: z.array(z.string()),
}).superRefine((c, ctx) => {
  checkFinetune(c, ctx);
  if (c.classNames.length !== c.numClasses) {
    ctx.addIssue({
      code: 'custom',
      path: ['classNames'],
      message: `${c.classNames.length} class names for ${c.numClasses} classes`,
    });
  }
});
export type FinetuneRecord = z.infer<typeof FinetuneRecord>;

/** The image side a dataset source yields, from the source alone. */
export function sourceImageSize(dataset: DatasetSource): number {
  switch (dataset.kind) {
    case 'builtin':
    case 'folder':
    case 'tiny-imagenet':
      return dataset.imageSize;
    case 'cifar10':
      return 32;
  }
}

/**
 * The spec's dataset-dependent defaults: eps 8/255 (CIFAR-10, Tiny-ImageNet) or 4/255 (ImageNet-sized
 * images, >= 160 px); base lr 5e-3 (CIFAR-10 and the built-in set) or 1e-3 (Tiny-ImageNet, image folders).
 */
export function datasetDefaults(dataset: DatasetSource): { eps: number; baseLr: number } {
  return {
    eps: sourceImageSize(dataset) >= 160 ? 4 : 8,
    baseLr: dataset.kind === 'cifar10' || dataset.kind === 'builtin' ? 5e-3 : 1e-3,
  };
}

/** A config (or the part of one that sets the budget and rate) with its dataset defaults filled in. */
type Resolved<C extends Pick<FinetuneConfig, 'dataset' | 'threat' | 'optimizer'>> = Omit<C, 'threat' | 'optimizer'> & {
  threat: Required<FinetuneThreat>;
  optimizer: FinetuneOptimizer & { baseLr: number };
};
export type ResolvedFinetuneConfig = Resolved<FinetuneConfig>;

/** The config with threat.eps and optimizer.baseLr filled in from the dataset where they were left out. */
export function resolveFinetuneConfig<C extends Pick<FinetuneConfig, 'dataset' | 'threat' | 'optimizer'>>(
  config: C,
): Resolved<C> {
  const defaults = datasetDefaults(config.dataset);
  return {
    ...config,
    threat: { norm: config.threat.norm, eps: config.threat.eps ?? defaults.eps },
    optimizer: { ...config.optimizer, baseLr: config.optimizer.baseLr ?? defaults.baseLr },
  };
}

/** The attack settings of the run in [0, 1] pixel units. */
export function attackBudget(run: Pick<ResolvedFinetuneConfig, 'threat' | 'attack'>): {
  threat: ResolvedFinetuneConfig['threat']['norm'];
  eps: number;
  alpha: number;
} {
  return { threat: run.threat.norm, eps: epsFrom255(run.threat.eps), alpha: epsFrom255(run.attack.alpha) };
}

/** The budget and learning rate a fine-tuning run trains with, as the engines compute them. */
export interface EffectiveFinetune {
  threat: ResolvedFinetuneConfig['threat']['norm'];
  /** In 1/255 units, and whether it is the dataset's default (threat.eps left out). */
  eps255: number;
  epsDefault: boolean;
  /** In [0, 1] pixel units. */
  eps: number;
  /** Whether the method trains on adversarial examples (else the budget applies to held-out PGD only). */
  adversarial: boolean;
  baseLr: number;
  lrDefault: boolean;
  batchSize: number;
  /** The peak learning rate: baseLr * batchSize / 256. */
  lr: number;
}

/** The fields that decide a fine-tuning's budget and learning rate. */
const FinetuneBudgetFields = FinetuneConfigObject.pick({
  method: true,
  dataset: true,
  threat: true,
  optimizer: true,
  attack: true,
  batchSize: true,
});
type FinetuneBudgetFields = z.infer<typeof FinetuneBudgetFields>;

export function effectiveFinetune(config: FinetuneBudgetFields): EffectiveFinetune {
  const resolved = resolveFinetuneConfig(config);
  const budget = attackBudget(resolved);
  return {
    threat: budget.threat,
    eps255: resolved.threat.eps,
    epsDefault: config.threat.eps === undefined,
    eps: budget.eps,
    adversarial: isAdversarialMethod(config.method),
    baseLr: resolved.optimizer.baseLr,
    lrDefault: config.optimizer.baseLr === undefined,
    batchSize: resolved.batchSize,
    lr: scaledLearningRate(resolved.optimizer.baseLr, resolved.batchSize),
  };
}

/**
 * effectiveFinetune of a form's config, which may be incomplete elsewhere (no checkpoint chosen yet):
 * only the fields that decide the budget and rate must be valid; null when one is not.
 */
export function effectiveFinetuneOf(config: Record<string, unknown>): EffectiveFinetune | null {
  const keys = Object.keys(FinetuneBudgetFields.shape).filter((key) => key in config);
  const parsed = FinetuneBudgetFields.safeParse(Object.fromEntries(keys.map((key) => [key, config[key]])));
  return parsed.success ? effectiveFinetune(parsed.data) : null;
}

/** The label smoothing a run's training loss uses: DBAT's own (0.5 unless set) for dbat, the run's otherwise. */
export function effectiveLabelSmoothing(run: Pick<FinetuneConfig, 'method' | 'labelSmoothing' | 'dbat'>): number {
  return run.method === 'dbat' ? (run.dbat.labelSmoothing ?? run.labelSmoothing) : run.labelSmoothing;
}

/** Outputs of the classifier's head: numClasses, or 2 * numClasses for DBAT's dummy classes. */
export function headOutputs(method: FinetuneMethod, numClasses: number): number {
  return method === 'dbat' ? 2 * numClasses : numClasses;
}
