import type { ThreatModel } from './types';

/**
 * FAB's step (Croce & Hein, ICML 2020): the smallest perturbation d, in l_inf or l_2, that moves a
 * point t onto the hyperplane w . z = b while keeping t + d in the box [0, 1]^n. When the box cannot
 * reach the hyperplane, d moves every coordinate as far as the box allows towards it (what
 * AutoAttack's fab_projections.py returns). Plain float64 arithmetic on one example; coordinates
 * with zero weight (|w| <= 1e-8 for l_2, as the reference) do not move.
 */

/**
 * The move's pieces: for each coordinate that can move (in `active`), the step parameter at which it
 * reaches the box (`breakpoint`), the slope it adds to H below that (`slope`) and what it contributes
 * once there (`reach`). H(lambda) = sum_i min(slope_i lambda, reach_i) is piecewise linear.
 */
interface Pieces {
  active: number[];
  breakpoint: Float64Array;
  slope: Float64Array;
  reach: Float64Array;
}

/** Which side of the hyperplane t is on (s = +-1, so that the move decreases w . z), and how far: s (w . t - b). */
function sideOf(t: ArrayLike<number>, w: ArrayLike<number>, b: number): { s: number; need: number } {
  let c = -b;
  for (let i = 0; i < t.length; i++) c += w[i] * t[i];
  const s = c >= 0 ? 1 : -1;
  return { s, need: s * c };
}

/**
 * The step parameter where H reaches `need`, walking H's pieces in breakpoint order; Infinity when
 * the box cannot reach the hyperplane (need >= H's total).
 */
function stepToHyperplane(need: number, pieces: Pieces): number {
  const { active, breakpoint, slope, reach } = pieces;
  let capacity = 0;
  let totalSlope = 0;
  for (const i of active) {
    capacity += reach[i];
    totalSlope += slope[i];
  }
  if (!(need < capacity && totalSlope > 0)) return Infinity;
  active.sort((i, j) => breakpoint[i] - breakpoint[j]);
  let saturated = 0;
  let remaining = totalSlope;
  let lambda = 0;
  for (const i of active) {
    const candidate = (need - saturated) / remaining;
    if (candidate <= breakpoint[i]) {
      lambda = candidate;
      break;
    }
    saturated += reach[i];
    remaining -= slope[i];
    lambda = breakpoint[i];
  }
  return Math.max(lambda, 0);
}

/**
 * The box-constrained projection. l_inf: every coordinate moves by min(lambda, room) against the sign
 * of its weight. l_2: d = clip(-alpha w, -t, 1 - t) with the alpha >= 0 that reaches the hyperplane;
 * coordinate i reaches the box at alpha = room / |w_i| and until then adds w_i^2 alpha to H.
 */
export function projectOntoHyperplane(
  threat: ThreatModel,
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
  out: Float64Array,
): void {
  const n = t.length;
  const { s, need } = sideOf(t, w, b);
  const linf = threat === 'linf';
  const pieces: Pieces = {
    active: [],
    breakpoint: new Float64Array(n),
    slope: new Float64Array(n),
    reach: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const wi = s * w[i];
    if (linf ? wi === 0 : Math.abs(wi) <= 1e-8) continue;
    // How far coordinate i can move in the decreasing direction before leaving [0, 1].
    const room = wi > 0 ? t[i] : 1 - t[i];
    pieces.active.push(i);
    pieces.breakpoint[i] = linf ? room : room / Math.abs(wi);
    pieces.slope[i] = linf ? Math.abs(wi) : wi * wi;
    pieces.reach[i] = Math.abs(wi) * room;
  }
  const step = stepToHyperplane(need, pieces);
  out.fill(0);
  for (const i of pieces.active) {
    out[i] = linf
      ? -Math.sign(s * w[i]) * Math.min(step, pieces.breakpoint[i])
      : Math.min(Math.max(-step * s * w[i], -t[i]), 1 - t[i]);
  }
}
