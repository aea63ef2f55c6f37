/**
 * The value axis of a constant series. ECharts' "scale" axis spans the data's own min and max; when
 * they are equal the axis collapses (one tick, or ticks repeating one label). A constant series instead
 * gets a symmetric range around its value with a round padding, so it draws as a flat line in the
 * middle with readable ticks. A series that varies gets null: ECharts' own nice ticks suit it.
 */
export interface AxisBounds {
  min: number;
  max: number;
}

/** Values closer than this (relative to their size) count as one value. */
const SAME = 1e-9;

/** The power of ten at or below `x` (x > 0). */
function decade(x: number): number {
  return 10 ** Math.floor(Math.log10(x));
}

/** `x` without float noise, so 0.1 - 0.01 reads 0.09, not 0.09000000000000001. */
function clean(x: number): number {
  return Number(x.toPrecision(12));
}

export function constantSeriesBounds(
  values: readonly (number | null | undefined)[],
  logScale = false,
): AxisBounds | null {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v) && (!logScale || v > 0));
  if (finite.length === 0) return null;
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const size = Math.max(Math.abs(lo), Math.abs(hi));
  if (hi - lo > SAME * Math.max(size, Number.MIN_VALUE)) return null;
  const value = (lo + hi) / 2;
  if (logScale) {
    // One decade either side: the log axis ticks at powers of ten.
    const d = decade(value);
    return { min: d / 10, max: d * 100 };
  }
  // A tenth of the value's decade (1 for zero): 0.1 → [0.09, 0.11], 86.6 → [85.6, 87.6].
  const pad = value === 0 ? 1 : decade(Math.abs(value)) / 10;
  return { min: clean(value - pad), max: clean(value + pad) };
}
