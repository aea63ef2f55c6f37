import { z } from 'zod';
import { ModelConfig } from '@shared/model-config';
import { MiEstimator } from '@shared/mi-config';

/**
 * What `mimir bench` measures: the model, the batch and the two training steps, in one flat object
 * that the PyTorch side (scripts/bench_torch.py) reads as it is, so both sides time the same work.
 * Epsilons and step sizes are in 1/255 units. Defaults: the speed anchor of reference/anchors.md
 * (32 px, patch 2, width 192, depth 2, 3 heads, decoder 128 x 2 x 16, batch 32, mask 0.75).
 */
export const BENCH_STEPS = ['pretrain', 'pgdat'] as const;
export const BenchStepName = z.enum(BENCH_STEPS);
export type BenchStepName = z.infer<typeof BenchStepName>;

const count = (min: number) => z.number().int().min(min);

export const BenchSettings = z.object({
  steps: z.array(BenchStepName).min(1).default(['pretrain', 'pgdat']),
  imageSize: count(2).default(32),
  patchSize: count(1).default(2),
  channels: z.literal(3).default(3),
  width: count(4).default(192),
  depth: count(1).default(2),
  heads: count(1).default(3),
  mlpRatio: z.number().positive().default(4),
  decoderWidth: count(4).default(128),
  decoderDepth: count(1).default(2),
  decoderHeads: count(1).default(16),
  batch: count(2).default(32),
  classes: count(2).default(10),
  maskRatio: z.number().gt(0).lt(1).default(0.75),
  /** The MIMIR step: visible-patch attack (eps, alpha in 1/255, steps) and the HSIC penalty. */
  pretrainEps: z.number().positive().default(8),
  pretrainAlpha: z.number().positive().default(10),
  attackSteps: count(1).default(1),
  /** hsic by default: the bench's speed anchor was measured with it. */
  miEstimator: MiEstimator.default('hsic'),
  miLambda: z.number().min(0).default(1e-5),
  miSigma: z.number().positive().default(5),
  /** The PGD-AT step: l_inf PGD from a uniform random start. */
  pgdEps: z.number().positive().default(8),
  pgdAlpha: z.number().positive().default(2),
  pgdSteps: count(1).default(10),
  /** PyTorch's intra-op threads (torch.set_num_threads), 2 in the anchor. */
  threads: count(1).default(2),
  /** Untimed-as-steady first steps (the first one is reported as the warm-up time). */
  warmup: count(1).default(1),
  /** Timed steady steps per side and step kind. */
  repeats: count(1).default(3),
  seed: count(0).default(0),
});
export type BenchSettings = z.output<typeof BenchSettings>;
export type BenchSettingsInput = z.input<typeof BenchSettings>;

export function benchModelConfig(s: BenchSettings): ModelConfig {
  return ModelConfig.parse({
    imageSize: s.imageSize,
    patchSize: s.patchSize,
    channels: s.channels,
    width: s.width,
    depth: s.depth,
    heads: s.heads,
    mlpRatio: s.mlpRatio,
    decoderWidth: s.decoderWidth,
    decoderDepth: s.decoderDepth,
    decoderHeads: s.decoderHeads,
  });
}
