import { z } from 'zod';
import { count, positive } from './zod-numbers';
import { ATTACK_VERSIONS, ThreatModel } from './attack-config';
import { CheckpointKind } from './checkpoint';
import { DatasetDescription, DatasetSource } from './dataset-config';
import { DBAT_MERGES } from './finetune-config';

/**
 * The loss landscape of a checkpoint (paper Section IV-F, Fig. 7; Li et al., "Visualizing the Loss
 * Landscape of Neural Nets", NeurIPS 2018): f(alpha, beta) = L(theta* + alpha d1 + beta d2) on a grid,
 * where d1, d2 are seeded Gaussian directions, normalised filter by filter to the norms of the
 * checkpoint's weights. A filter is one output unit: a column of a linear weight (stored [in, out]),
 * the whole tensor of a token; biases and LayerNorm parameters get a zero direction by default (the
 * reference implementation's `ignore='biasbn'`), or the weights themselves with `ignoreBiasNorm: false`
 * (its behaviour without `ignore`).
 */

export const LANDSCAPE_FORMAT = 'mimir-landscape';
export const LANDSCAPE_VERSION = 1;
export const LANDSCAPE_FILE = 'landscape.json';

/**
 * ce: cross-entropy of a classifier on clean examples; pgd-ce: cross-entropy at PGD adversarial
 * examples, recomputed against the perturbed weights at every grid point; recon: the masked
 * autoencoder's reconstruction loss with one fixed, seeded mask per example.
 */
export const LANDSCAPE_LOSSES = ['ce', 'pgd-ce', 'recon'] as const;
export const LandscapeLoss = z.enum(LANDSCAPE_LOSSES, { error: "loss must be 'ce', 'pgd-ce' or 'recon'" });
export type LandscapeLoss = z.infer<typeof LandscapeLoss>;

/** The loss a checkpoint kind supports. */
export function lossesFor(kind: CheckpointKind): readonly LandscapeLoss[] {
  return kind === 'finetune' ? ['ce', 'pgd-ce'] : ['recon'];
}

const countUpTo = (what: string, max: number) => count(what).max(max, `${what} must be at most ${max}`);

/** The adversary of `pgd-ce`; epsilons in [0, 1] pixel units (8/255 for eps 8). */
export const LandscapePgd = z.object({
  threat: ThreatModel.default('linf'),
  eps: positive('pgd.eps').default(8 / 255),
  steps: countUpTo('pgd.steps', 1000).default(10),
  alpha: positive('pgd.alpha').default(2 / 255),
  randomStart: z.boolean().default(true),
});
export type LandscapePgd = z.infer<typeof LandscapePgd>;

const gridCount = countUpTo('grid', 401);
/** Points per axis: one number for a square grid, or [alpha points, beta points]. */
export const LandscapeGrid = z.union([gridCount, z.tuple([gridCount, gridCount])], {
  error: 'grid must be a whole number of points per axis, or a pair [alpha points, beta points]',
});
export type LandscapeGrid = z.infer<typeof LandscapeGrid>;

const span = z
  .tuple([z.number().finite(), z.number().finite()], { error: 'span must be a pair [min, max]' })
  .refine(([lo, hi]) => lo < hi, 'span must have min < max');

export const LandscapeRequest = z.object({
  /** A checkpoint directory, a folder of checkpoints or a run folder (its newest good checkpoint). */
  checkpoint: z.string().trim().min(1, 'checkpoint must name a checkpoint directory'),
  dataset: DatasetSource,
  /** The first `examples` images of the dataset, in index order. */
  examples: countUpTo('examples', 1_000_000).default(256),
  grid: LandscapeGrid.default(21),
  /** Range of alpha and beta, in units of the normalised directions (1 = the weights' own filter norms). */
  span: span.default([-1, 1]),
  /** Default: 'ce' for a fine-tuning checkpoint, 'recon' for a pre-training one. */
  loss: LandscapeLoss.optional(),
  pgd: LandscapePgd.default(LandscapePgd.parse({})),
  /** Seeds the two directions, the reconstruction masks and PGD's random starts. */
  seed: z.number().int().min(0).max(0xffffffff, 'seed must fit in 32 bits').default(0),
  batchSize: countUpTo('batchSize', 65_536).default(64),
  /** Zero direction for biases and LayerNorm parameters (Li et al.'s usual setting). */
  ignoreBiasNorm: z.boolean().default(true),
  /** recon: mask ratio and norm_pix targets; default the checkpoint's run config, else 0.75 and true. */
  maskRatio: z.number().gt(0).lt(1, 'maskRatio must be in (0, 1)').optional(),
  normPixLoss: z.boolean().optional(),
});
export type LandscapeRequest = z.infer<typeof LandscapeRequest>;
export type LandscapeRequestInput = z.input<typeof LandscapeRequest>;

/** Points along alpha (columns) and beta (rows). */
export function gridShape(grid: LandscapeGrid): { cols: number; rows: number } {
  return typeof grid === 'number' ? { cols: grid, rows: grid } : { cols: grid[0], rows: grid[1] };
}

/**
 * Evenly spaced coordinates from lo to hi inclusive (the midpoint alone for one point). A coordinate
 * within rounding of 0 is exactly 0, so a grid over a span around 0 holds the checkpoint itself.
 */
export function gridCoordinates(points: number, [lo, hi]: readonly [number, number]): number[] {
  const at = (t: number) => {
    const value = lo + (hi - lo) * t;
    return Math.abs(value) <= 1e-12 * (hi - lo) ? 0 : value;
  };
  if (points === 1) return [at(0.5)];
  return Array.from({ length: points }, (_, i) => at(i / (points - 1)));
}

const finiteOrNull = z.number().nullable();
const extreme = z.object({ value: z.number(), alpha: z.number(), beta: z.number() });

export const LandscapeProtocol = z.object({
  /** The checkpoint directory read. */
  checkpoint: z.string(),
  checkpointKind: CheckpointKind,
  checkpointEpoch: z.number().int().nonnegative(),
  checkpointStep: z.number().int().nonnegative(),
  dataset: DatasetDescription,
  /** The first `examples` images in index order. */
  examples: z.number().int().positive(),
  loss: LandscapeLoss,
  seed: z.number().int().nonnegative(),
  batchSize: z.number().int().positive(),
  directions: z.object({
    distribution: z.literal('gaussian'),
    normalization: z.literal('filter'),
    ignoreBiasNorm: z.boolean(),
  }),
  span: z.tuple([z.number(), z.number()]),
  /** With its implementation version (ATTACK_VERSIONS.pgd). */
  pgd: LandscapePgd.extend({ version: z.string() }).nullable(),
  recon: z.object({ maskRatio: z.number(), normPixLoss: z.boolean() }).nullable(),
  /** A DBAT checkpoint (2C outputs): how class y's score merged z_y and z_{y+C} (its record's dbat.merge); else null. */
  dbatMerge: z.enum(DBAT_MERGES).nullable(),
  backend: z.string(),
});
export type LandscapeProtocol = z.infer<typeof LandscapeProtocol>;

export const LandscapeResult = z.object({
  format: z.literal(LANDSCAPE_FORMAT),
  version: z.literal(LANDSCAPE_VERSION),
  alphas: z.array(z.number()),
  betas: z.array(z.number()),
  /** losses[row][col] = L(theta* + alphas[col] d1 + betas[row] d2), mean over the examples; null where not finite. */
  losses: z.array(z.array(finiteOrNull)),
  /** Classifiers: accuracy (clean for ce, under PGD for pgd-ce) in [0, 1] per point; null for recon. */
  accuracy: z.array(z.array(z.number())).nullable(),
  /** Over the finite losses; null when none is finite. */
  min: extreme.nullable(),
  max: extreme.nullable(),
  /** The loss at alpha = beta = 0 (the checkpoint's own) when the grid has that point, else null. */
  centre: finiteOrNull,
  protocol: LandscapeProtocol,
  seconds: z.number().nonnegative(),
  createdAt: z.iso.datetime(),
});
export type LandscapeResult = z.infer<typeof LandscapeResult>;

export const LANDSCAPE_PGD_VERSION = ATTACK_VERSIONS.pgd;
