import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AttackRunRecord,
  AutoAttackRecord,
  epsTo255,
  type AutoAttackStage,
  type EvaluatedExamples,
  type ReportWarning,
} from '@shared/attack-config';
import {
  EVALUATION_VERSIONS,
  FLIPPED_IMAGES_DIR,
  type AttackOutcome,
  type FlippedExample,
  type FlippedImages,
  type Protocol,
} from '@shared/evaluation';
import { writePngStrip } from '../io/png';
import { implementationOf, stepsAndRestarts, type EvaluationPlan, type PlannedAttack } from './plan';

/** What an attack's outcome needs besides its tally: the run's plan and protocol, where images go. */
export interface OutcomeContext {
  plan: EvaluationPlan;
  seed: number;
  backend: string;
  examples: EvaluatedExamples;
  outDir: string;
  imageSize: number;
}

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

  /** The attack's outcome over every batch, for the report; writes its flipped examples' PNG strips. */
  async outcome(context: OutcomeContext): Promise<AttackOutcome> {
    const { plan, seed, backend, examples, outDir, imageSize } = context;
    const planned = this.planned;
    const protocol = protocolOf(planned, plan, seed, backend, examples);
    const cleanAccuracy = this.share(this.cleanCorrect);
    const robustAccuracy = this.share(this.robust);
    const warnings: ReportWarning[] = [];
    let record: AttackOutcome['record'];
    let robustAccuracyWithinEps: number | undefined;
    // What either record says besides its spec and details.
    const header = { backend, examples, cleanAccuracy, robustAccuracy };
    if (planned.kind === 'autoattack') {
      const deviations = [...this.deviations];
      warnings.push(...deviations.map((message) => ({ kind: 'autoattack-deviation' as const, message })));
      record = AutoAttackRecord.parse({
        spec: planned.spec,
        implementation: implementationOf(planned.spec),
        ...header,
        stages: this.stages(examples.count),
        brokenBy: this.brokenBy,
        deviations,
        durationMs: this.durationMs,
      });
    } else if (planned.kind === 'single') {
      if (planned.withinEps) robustAccuracyWithinEps = this.share(this.robustWithinEps);
      record = AttackRunRecord.parse({
        spec: planned.spec,
        implementation: implementationOf(planned.spec),
        ...header,
        ...(robustAccuracyWithinEps !== undefined ? { robustAccuracyWithinEps } : {}),
        perExample: { robust: this.robust, margin: this.margin, norm: this.norm },
        gradientCalls: this.gradientCalls,
        forwardCalls: this.forwardCalls,
        durationMs: this.durationMs,
      });
      if (planned.spec.attack === 'cw-l2' && !planned.withinEps) {
        warnings.push({
          kind: 'cw-unbounded',
          message: 'CW-l2 is unbounded here: it counts every flip at any l_2 distance (see the norms in its record).',
        });
      }
      if (planned.spec.attack === 'pgd-mi') {
        warnings.push({
          kind: 'batch-statistic',
          message: `PGD-MI's MI term is a batch statistic: its numbers depend on the batch size.`,
        });
      }
    }
    const images = await writeFlippedImages(this, outDir, imageSize, plan.eps);
    return {
      key: planned.key,
      label: planned.label,
      cleanAccuracy,
      robustAccuracy,
      ...(robustAccuracyWithinEps !== undefined ? { robustAccuracyWithinEps } : {}),
      protocol,
      ...(record ? { record } : {}),
      warnings,
      flipped: { count: this.flippedCount, listed: this.flipped, images },
      durationMs: this.durationMs,
    };
  }
}

const fileKey = (key: string) => key.replace(/[^a-z0-9-]+/gi, '-');

function protocolOf(
  planned: PlannedAttack,
  plan: EvaluationPlan,
  seed: number,
  backend: string,
  examples: EvaluatedExamples,
): Protocol {
  if (planned.kind === 'natural') {
    return {
      threat: null,
      eps: null,
      eps255: null,
      attack: 'natural',
      implementation: EVALUATION_VERSIONS.natural,
      steps: null,
      restarts: null,
      seed,
      examples,
      backend,
      inWorstCase: true,
      iterate: null,
    };
  }
  const { steps, restarts } = stepsAndRestarts(planned.spec);
  const spec = planned.spec;
  const iterate =
    spec.attack === 'pgd' || spec.attack === 'pgd-mi' || spec.attack === 'pgd-fea' ? (spec.keep ?? 'best') : null;
  const isCwL2 = planned.kind === 'single' && planned.spec.attack === 'cw-l2';
  const bounded = !isCwL2 || (planned.kind === 'single' && planned.withinEps);
  return {
    threat: isCwL2 ? 'l2' : plan.threat,
    eps: bounded ? plan.eps : null,
    eps255: bounded ? epsTo255(plan.eps) : null,
    attack: planned.label,
    implementation: implementationOf(planned.spec),
    steps,
    restarts,
    seed,
    examples,
    backend,
    inWorstCase: planned.kind === 'autoattack' || planned.inWorstCase,
    iterate,
  };
}

async function writeFlippedImages(
  tally: AttackTally,
  outDir: string,
  imageSize: number,
  eps: number,
): Promise<FlippedImages | null> {
  const samples = tally.samples;
  if (samples.length === 0) return null;
  const dir = path.join(outDir, FLIPPED_IMAGES_DIR);
  await mkdir(dir, { recursive: true });
  const pixels = imageSize * imageSize * 3;
  const clean = new Float32Array(samples.length * pixels);
  const adversarial = new Float32Array(samples.length * pixels);
  samples.forEach((s, i) => {
    clean.set(s.clean, i * pixels);
    adversarial.set(s.adversarial, i * pixels);
  });
  const planned = tally.planned;
  const boundedLinf = planned.kind !== 'natural' && !(planned.kind === 'single' && planned.spec.attack === 'cw-l2');
  const threatIsLinf = planned.kind !== 'natural' && 'threat' in planned.spec && planned.spec.threat === 'linf';
  // l_inf: +-eps fills the range; otherwise the largest |delta| shown does.
  let largest = 0;
  for (let i = 0; i < clean.length; i++) largest = Math.max(largest, Math.abs((adversarial[i] ?? 0) - (clean[i] ?? 0)));
  const scale = boundedLinf && threatIsLinf ? 0.5 / eps : 0.5 / Math.max(largest, 1e-6);
  const perturbation = adversarial.map((v, i) => 0.5 + scale * (v - (clean[i] ?? 0)));
  const base = fileKey(tally.planned.key);
  const files = {
    clean: `${base}-clean.png`,
    adversarial: `${base}-adversarial.png`,
    perturbation: `${base}-perturbation.png`,
  };
  await writePngStrip(path.join(dir, files.clean), clean, samples.length, imageSize);
  await writePngStrip(path.join(dir, files.adversarial), adversarial, samples.length, imageSize);
  await writePngStrip(path.join(dir, files.perturbation), perturbation, samples.length, imageSize);
  return { ...files, indices: samples.map((s) => s.index), imageSize, perturbationScale: scale };
}
