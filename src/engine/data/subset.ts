import type { TrainingFraction } from '@shared/dataset-config';
import { distinctSample } from '../rng';
import type { Dataset } from './dataset';
import { checkIndex } from './dataset';

/**
 * A seeded share of a dataset (the paper's Table XX trains on 10 % to 100 % of the training set):
 * round(fraction x length) distinct indices (at least one), drawn with the seed, in increasing order.
 * The whole dataset when the fraction is 1.
 */
export function datasetFraction(dataset: Dataset, { fraction, seed }: TrainingFraction): Dataset {
  if (fraction >= 1) return dataset;
  const indices = distinctSample(dataset.length, Math.max(1, Math.round(fraction * dataset.length)), seed);
  const percent = Number((fraction * 100).toFixed(2));
  const subset: Dataset = {
    length: indices.length,
    numClasses: dataset.numClasses,
    classNames: dataset.classNames,
    imageSize: dataset.imageSize,
    description: {
      ...dataset.description,
      summary: `${dataset.description.summary} A ${percent}% share (seed ${seed}): ${indices.length} of ${dataset.length} images.`,
    },
    labelOf: (index) => {
      checkIndex(subset, index);
      return dataset.labelOf(indices[index] as number);
    },
    get: (wanted) => {
      const mapped = Array.from(wanted, (index) => {
        checkIndex(subset, index);
        return indices[index] as number;
      });
      return dataset.get(mapped);
    },
  };
  return subset;
}
