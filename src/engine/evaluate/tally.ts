import type { AutoAttackStage } from '../../shared/attack-config';
import type { FlippedExample } from '../../shared/evaluation';
import type { PlannedAttack } from './plan';

/** An example an attack flipped, kept with its images for the report's PNG strips. */
export interface FlippedSample {
  index: number;
  clean: Float32Array;
  adversarial: Float32Array;
}

/**
 * Per-example outcomes of one planned attack, gathered batch by batch (every attack keys its
 * randomness by example id, so the batching does not change them).
 */
export class AttackTally {
  readonly cleanCorrect: boolean[] = [];
  readonly robust: boolean[] = [];
  readonly robustWithinEps: boolean[] = [];
  readonly margin: number[] = [];
  readonly norm: number[] = [];
  readonly flipped: FlippedExample[] = [];
  readonly samples: FlippedSample[] = [];
  flippedCount = 0;
  gradientCalls = 0;
  forwardCalls = 0;
  durationMs = 0;
  /** AutoAttack only. */
  readonly brokenBy: (string | null)[] = [];
  readonly deviations = new Set<string>();
  private stageTotals: { stage: AutoAttackStage; robustCount: number; ranIn: number }[] = [];

  constructor(
    readonly planned: PlannedAttack,
    private readonly limits: { list: number; images: number },
  ) {}

  /** Record a batch: outcomes per example, and the images of examples the attack flipped (while the budget lasts). */
  addBatch(batch: {
    ids: ArrayLike<number>;
    labels: ArrayLike<number>;
    cleanPred: ArrayLike<number>;
    advPred: ArrayLike<number>;
    cleanCorrect: boolean[];
    robust: boolean[];
    robustWithinEps?: boolean[];
    margin: ArrayLike<number>;
    norm: ArrayLike<number>;
  }): number[] {
    const wantImages: number[] = [];
    batch.robust.forEach((robust, i) => {
      const clean = batch.cleanCorrect[i] === true;
      this.cleanCorrect.push(clean);
      this.robust.push(robust);
      this.robustWithinEps.push(batch.robustWithinEps?.[i] ?? robust);
      this.margin.push(batch.margin[i] ?? Number.NaN);
      this.norm.push(batch.norm[i] ?? Number.NaN);
      const flippedHere = clean && !(batch.robustWithinEps?.[i] ?? robust);
      if (!flippedHere) return;
      this.flippedCount++;
      if (this.flipped.length < this.limits.list) {
        this.flipped.push({
          index: batch.ids[i] ?? 0,
          label: batch.labels[i] ?? 0,
          cleanPrediction: batch.cleanPred[i] ?? 0,
          adversarialPrediction: batch.advPred[i] ?? 0,
        });
      }
      if (this.samples.length + wantImages.length < this.limits.images) wantImages.push(i);
    });
    return wantImages;
  }

  /** AutoAttack's stages of one batch of `n` examples, summed into stages over all examples. */
  addStages(stages: AutoAttackStage[], n: number): void {
    stages.forEach((stage, s) => {
      const robustCount = Math.round(stage.robustAccuracy * n);
      const total = this.stageTotals[s];
      if (!total) {
        this.stageTotals[s] = { stage: { ...stage }, robustCount, ranIn: stage.skipped === undefined ? 1 : 0 };
        return;
      }
      total.robustCount += robustCount;
      total.stage.broken += stage.broken;
      total.stage.attacked += stage.attacked;
      total.stage.durationMs += stage.durationMs;
      if (stage.skipped === undefined) {
        total.ranIn++;
        if (stage.targetsUsed !== undefined) total.stage.targetsUsed = stage.targetsUsed;
      }
    });
  }

  stages(examples: number): AutoAttackStage[] {
    return this.stageTotals.map(({ stage, robustCount, ranIn }) => {
      const { skipped, ...rest } = stage;
      return {
        ...rest,
        robustAccuracy: robustCount / Math.max(examples, 1),
        // A stage counts as skipped only where it ran in no batch.
        ...(ranIn === 0 && skipped !== undefined ? { skipped } : {}),
      };
    });
  }

  share(flags: boolean[]): number {
    return flags.filter(Boolean).length / Math.max(flags.length, 1);
  }
}
