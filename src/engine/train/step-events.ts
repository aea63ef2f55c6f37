import type { RunEventSink } from '@shared/run-events';

export interface StepPlan {
  batchSize: number;
  epochs: number;
  stepsPerEpoch: number;
  /** Emit a metrics event every this many steps (and at the end of each epoch). */
  logEvery: number;
}

/**
 * What the pre-training and fine-tuning loops do after each step: keep the throughput (leaving out
 * the run's first step, which includes the warm-up) and emit the step's metrics and progress events.
 */
export class StepEvents {
  private images = 0;
  private seconds = 0;

  constructor(
    private readonly emit: RunEventSink,
    private readonly plan: StepPlan,
  ) {}

  /** Images per second over the timed steps so far (0 before any). */
  get imagesPerSecond(): number {
    return this.seconds > 0 ? this.images / this.seconds : 0;
  }

  /**
   * After `step` (1-based, over the run) that trained batch `b` of 0-based `epoch` in `seconds`, with
   * its `values` at learning rate `lr` (`extra` goes into the metrics after them). Returns images/s.
   */
  after(
    step: number,
    epoch: number,
    b: number,
    seconds: number,
    values: Record<string, number>,
    lr: number,
    extra: Record<string, number> = {},
  ): number {
    const { batchSize, epochs, stepsPerEpoch, logEvery } = this.plan;
    if (step > 1 || epoch > 0) {
      this.images += batchSize;
      this.seconds += seconds;
    }
    const imagesPerSecond = this.seconds > 0 ? this.imagesPerSecond : batchSize / seconds;
    if (step % logEvery === 0 || b === stepsPerEpoch - 1) {
      this.emit({
        type: 'metrics',
        step,
        epoch: epoch + (b + 1) / stepsPerEpoch,
        values: { ...values, lr, images_per_s: imagesPerSecond, ...extra },
      });
    }
    const totalSteps = stepsPerEpoch * epochs;
    this.emit({
      type: 'progress',
      epoch: epoch + 1,
      epochs,
      step,
      totalSteps,
      imagesPerSecond,
      etaSeconds: ((totalSteps - step) * batchSize) / Math.max(imagesPerSecond, 1e-9),
    });
    return imagesPerSecond;
  }
}

/** The message that stops a run when one of a step's values is NaN or infinite; null when all are finite. */
export function nonFiniteStop(
  values: Record<string, number>,
  step: number,
  epoch: number,
  lastCheckpoint: string | null,
): string | null {
  const bad = Object.entries(values).find(([, value]) => !Number.isFinite(value));
  if (!bad) return null;
  return (
    `${bad[0]} became ${bad[1]} at step ${step} (epoch ${epoch + 1}); training stopped. ` +
    `Lower the learning rate (optimizer.baseLr) or set optimizer.clipGrad, then resume from the last good checkpoint` +
    `${lastCheckpoint ? ` (${lastCheckpoint})` : ' (none was written yet: start again)'}.`
  );
}
