/**
 * TensorBoard's smoothing: an exponential moving average with weight `weight` in [0, 1), debiased
 * so the first points are not pulled towards zero. Missing values (null: a non-finite number the
 * engine reported) stay missing and do not disturb the average.
 */
export function smoothEma(values: readonly (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return [...values];
  let last = 0;
  let count = 0;
  return values.map((value) => {
    if (value === null || !Number.isFinite(value)) return null;
    last = last * weight + (1 - weight) * value;
    count += 1;
    return last / (1 - weight ** count);
  });
}

/** The one default smoothing weight of every metric chart (run page and Compare), shown beside the slider. */
export const DEFAULT_SMOOTHING = 0.6;
