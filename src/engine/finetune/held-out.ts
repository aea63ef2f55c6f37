import { pgd, type Classifier, type ThreatModel } from '../attacks';
import { evaluationBatches, type Dataset } from '../data';

/**
 * The quick robustness check after an epoch: natural accuracy and PGD accuracy (random start, the
 * best point kept, as the evaluation's PGD) on the first `size` images of the test split, always the
 * same images with the same attack seed, so the curve shows the model and nothing else. A fixed
 * small subset: a trend for the run's charts, not the evaluation's numbers (`mimir eval`).
 */
export interface HeldOutOptions {
  size: number;
  batchSize: number;
  threat: ThreatModel;
  /** Pixel units. */
  eps: number;
  alpha: number;
  steps: number;
  seed: number;
  signal?: AbortSignal;
}

export interface HeldOutResult {
  count: number;
  natural: number;
  pgd: number;
}

export async function heldOutAccuracy(
  model: Classifier,
  dataset: Dataset,
  options: HeldOutOptions,
): Promise<HeldOutResult> {
  let count = 0;
  let natural = 0;
  let robust = 0;
  for await (const batch of evaluationBatches(dataset, options.batchSize, options.size)) {
    try {
      const result = await pgd(model, batch.images, batch.labelValues, {
        threat: options.threat,
        eps: options.eps,
        alpha: options.alpha,
        steps: options.steps,
        randomStart: true,
        keep: 'best',
        seed: options.seed,
        ids: batch.indices,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      result.xAdv.dispose();
      count += batch.labelValues.length;
      natural += result.cleanCorrect.filter(Boolean).length;
      robust += result.robust.filter(Boolean).length;
    } finally {
      batch.images.dispose();
      batch.labels.dispose();
    }
  }
  return { count, natural: count > 0 ? natural / count : 0, pgd: count > 0 ? robust / count : 0 };
}
