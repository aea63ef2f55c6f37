import { z } from 'zod';
import { configObject } from './config-object';
import { RunEngine } from './engine-choice';
import {
  AugmentationConfig,
  DatasetSource,
  ExtraData,
  PRETRAIN_AUGMENTATION,
  TrainingFraction,
} from './dataset-config';
import { MiConfig, MiLayer } from './mi-config';
import {
  checkModelEngine,
  DecoderSize,
  ModelConfig,
  ModelPreset,
  modelConfigFromPreset,
  modelDepth,
  withDecoder,
} from './model-config';
import { errorMessage } from './unknown-value';

/**
 * A pre-training run (spec section 3, paper Algorithm 1 and Table XV). Epsilons and step sizes are
 * in 1/255 units, as the UI and CLI speak (`eps: 8` means 8/255).
 */

export const PRETRAIN_MODES = ['mae', 'adv-mae', 'mimir'] as const;
/** mae: no attack, no MI penalty. adv-mae: attack, lambda 0. mimir: attack + MI penalty. */
export const PretrainMode = z.enum(PRETRAIN_MODES, { error: "mode must be 'mae', 'adv-mae' or 'mimir'" });
export type PretrainMode = z.infer<typeof PretrainMode>;

export const PretrainAttack = configObject({
  /** Signed-gradient ascent steps on the reconstruction loss (Table IX compares 1 and 10). */
  steps: z.number().int('attack steps must be a whole number').min(1, 'attack steps must be >= 1').max(100).default(1),
  eps: z.number().positive('eps must be > 0').max(255, 'eps is in 1/255 units: at most 255').default(8),
  alpha: z.number().positive('alpha must be > 0').max(255, 'alpha is in 1/255 units: at most 255').default(10),
  /** visible: only the encoder's visible patches are perturbed (the paper); image: the whole image (the authors' code). */
  perturb: z.enum(['visible', 'image'], { error: "perturb must be 'visible' or 'image'" }).default('visible'),
  /** shared: one mask for the attack and the training pass (the paper); fresh: a new mask per forward pass (the code). */
  attackMask: z.enum(['shared', 'fresh'], { error: "attackMask must be 'shared' or 'fresh'" }).default('shared'),
});
export type PretrainAttack = z.infer<typeof PretrainAttack>;

export const PretrainMi = MiConfig.extend({
  /** Weight of MI(x + delta, z) in the loss; used by mode mimir only (the estimate is recorded for every mode). */
  lambda: z.number().min(0, 'lambda must be >= 0').default(1e-5),
  /** Order of z's visible tokens when flattened for MI: spatial (the paper) or shuffled (the code). */
  tokenOrder: z.enum(['spatial', 'shuffled']).default('spatial'),
  /** Which encoder output z is for MI (Table XXI); default the last block after the final norm. */
  layer: MiLayer.prefault({}),
  /**
   * Measure penalty_grad_ratio (the penalty's gradient norm on the encoder over the reconstruction's)
   * at step 1 and then every this many steps; each costs an extra forward and backward pass through
   * the encoder. 0: never. Mode mimir with lambda > 0 only.
   */
  penaltyGradEvery: z
    .number()
    .int('penaltyGradEvery must be a whole number of steps')
    .min(0, 'penaltyGradEvery must be >= 0 (0: never)')
    .default(50),
});
export type PretrainMi = z.infer<typeof PretrainMi>;

export const PretrainOptimizer = configObject({
  /** Base learning rate; the run uses baseLr * batchSize / 256. */
  baseLr: z.number().positive('baseLr must be > 0').default(1.5e-4),
  minLr: z.number().min(0).default(0),
  weightDecay: z.number().min(0).default(0.05),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.95),
  warmupEpochs: z.number().min(0).default(40),
  /** Clip the global gradient norm to this value; null: no clipping. */
  clipGrad: z.number().positive().nullable().default(null),
});
export type PretrainOptimizer = z.infer<typeof PretrainOptimizer>;

export const PretrainConfig = configObject({
  mode: PretrainMode.default('mimir'),
  /** A preset name (sized for the dataset's images) or a full model configuration. */
  model: z.union([ModelPreset, ModelConfig]).default('vit-s'),
  /** The decoder's depth, width and heads over the model's (Table XIX); absent: the model's own. */
  decoder: DecoderSize.optional(),
  dataset: DatasetSource.prefault({ kind: 'builtin' }),
  /** Train on a seeded share of the dataset (Table XX); 1: all of it. */
  trainFraction: TrainingFraction.prefault({}),
  /** Generated images mixed into every batch at a ratio (Table XVIII); absent: none. */
  extraData: ExtraData.optional(),
  augmentation: AugmentationConfig.default(PRETRAIN_AUGMENTATION),
  epochs: z.number().int().min(1, 'epochs must be >= 1').default(800),
  batchSize: z.number().int().min(2, 'batchSize must be >= 2 (MI needs pairs of samples)').default(512),
  maskRatio: z.number().gt(0).lt(1, 'maskRatio must be in (0, 1)').default(0.75),
  normPixLoss: z.boolean().default(true),
  attack: PretrainAttack.prefault({}),
  mi: PretrainMi.prefault({}),
  optimizer: PretrainOptimizer.prefault({}),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  /** Save a checkpoint every this many epochs (and always at the end). */
  checkpointEvery: z.number().int().min(1).default(20),
  /** Keep this many recent checkpoints (older ones are deleted, the final one is always kept). */
  keepCheckpoints: z.number().int().min(1).default(3),
  /** Write preview images of the fixed preview batch every this many steps (0: at epoch ends only). */
  previewEvery: z.number().int().min(0).default(0),
  previewCount: z.number().int().min(1).max(16).default(8),
  /** Emit a metrics event every this many steps. */
  logEvery: z.number().int().min(1).default(1),
  /** Read the steps' metrics from the device every this many steps (absent: 1, or 8 on webgpu); every step is still reported. */
  metricsEvery: z.number().int().min(1).optional(),
  /** The engine that trains the run; absent: tfjs. */
  engine: RunEngine.optional(),
}).superRefine((c, ctx) => {
  if (c.attack.perturb === 'visible' && c.attack.attackMask === 'fresh') {
    ctx.addIssue({
      code: 'custom',
      path: ['attack', 'attackMask'],
      message:
        "attackMask 'fresh' needs perturb 'image': a visible-patch perturbation belongs to the mask it was made on",
    });
  }
  if (c.decoder) {
    try {
      withDecoder(typeof c.model === 'string' ? modelConfigFromPreset(c.model) : c.model, c.decoder);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        path: ['decoder'],
        message: errorMessage(error),
      });
    }
  }
  checkModelEngine(c.model, c.engine, ctx, ['model']);
  const depth = modelDepth(c.model);
  if (typeof c.mi.layer.block === 'number' && c.mi.layer.block > depth) {
    ctx.addIssue({
      code: 'custom',
      path: ['mi', 'layer', 'block'],
      message: `block ${c.mi.layer.block} is past the encoder's ${depth} blocks: give 1..${depth} or 'last'`,
    });
  }
  if (c.attack.alpha > 4 * c.attack.eps && c.mode !== 'mae') {
    ctx.addIssue({
      code: 'custom',
      path: ['attack', 'alpha'],
      message: `alpha ${c.attack.alpha} is over 4x eps ${c.attack.eps}: a typo?`,
    });
  }
});
export type PretrainConfig = z.infer<typeof PretrainConfig>;
export type PretrainConfigInput = z.input<typeof PretrainConfig>;
