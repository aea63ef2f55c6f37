/**
 * FAB's step (Croce & Hein, ICML 2020): the smallest perturbation d, in l_inf or l_2, that moves a
 * point t onto the hyperplane w . z = b while keeping t + d in the box [0, 1]^n. When the box cannot
 * reach the hyperplane, d moves every coordinate as far as the box allows towards it (what
 * AutoAttack's fab_projections.py returns). Plain float64 arithmetic on one example; coordinates
 * with zero weight (|w| <= 1e-8 for l_2, as the reference) do not move.
 */

/** l_inf: every coordinate moves by min(lambda, room) against the sign of its weight. */
export function projectOntoHyperplaneLinf(
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
  out: Float64Array,
): void {
  const n = t.length;
  let c = -b;
  for (let i = 0; i < n; i++) c += w[i] * t[i];
  // Orient the hyperplane so that the point lies on its positive side and the move decreases w . z.
  const s = c >= 0 ? 1 : -1;
  const need = s * c;
  // room[i]: how far coordinate i can move in the decreasing direction before leaving [0, 1].
  const room = new Float64Array(n);
  const active: number[] = [];
  let capacity = 0;
  let totalWeight = 0;
  for (let i = 0; i < n; i++) {
    const wi = s * w[i];
    if (wi === 0) continue;
    room[i] = wi > 0 ? t[i] : 1 - t[i];
    active.push(i);
    capacity += Math.abs(wi) * room[i];
    totalWeight += Math.abs(wi);
  }
  out.fill(0);
  let lambda = Infinity;
  if (need < capacity && totalWeight > 0) {
    active.sort((i, j) => room[i] - room[j]);
    // H(lambda) = sum |w_i| min(lambda, room_i) is piecewise linear; walk its pieces.
    let saturated = 0;
    let remaining = totalWeight;
    lambda = 0;
    for (const i of active) {
      const candidate = (need - saturated) / remaining;
      if (candidate <= room[i]) {
        lambda = candidate;
        break;
      }
      saturated += Math.abs(w[i]) * room[i];
      remaining -= Math.abs(w[i]);
      lambda = room[i];
    }
    lambda = Math.max(lambda, 0);
  }
  for (const i of active) out[i] = -Math.sign(s * w[i]) * Math.min(lambda, room[i]);
}

/** l_2: d = clip(-alpha w, -t, 1 - t) with the alpha >= 0 that reaches the hyperplane. */
export function projectOntoHyperplaneL2(
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
  out: Float64Array,
): void {
  const n = t.length;
  let c = -b;
  for (let i = 0; i < n; i++) c += w[i] * t[i];
  const s = c >= 0 ? 1 : -1;
  const need = s * c;
  // breakpoint[i]: the alpha at which coordinate i reaches the box; gain: what it then contributes.
  const breakpoint = new Float64Array(n);
  const active: number[] = [];
  let capacity = 0;
  let totalSquared = 0;
  for (let i = 0; i < n; i++) {
    const wi = s * w[i];
    if (Math.abs(wi) <= 1e-8) continue;
    const room = wi > 0 ? t[i] : 1 - t[i];
    breakpoint[i] = room / Math.abs(wi);
    active.push(i);
    capacity += Math.abs(wi) * room;
    totalSquared += wi * wi;
  }
  out.fill(0);
  let alpha = Infinity;
  if (need < capacity && totalSquared > 0) {
    active.sort((i, j) => breakpoint[i] - breakpoint[j]);
    let saturated = 0;
    let remaining = totalSquared;
    alpha = 0;
    for (const i of active) {
      const candidate = (need - saturated) / remaining;
      if (candidate <= breakpoint[i]) {
        alpha = candidate;
        break;
      }
      const wi = s * w[i];
      saturated += Math.abs(wi) * (wi > 0 ? t[i] : 1 - t[i]);
      remaining -= wi * wi;
      alpha = breakpoint[i];
    }
    alpha = Math.max(alpha, 0);
  }
  for (const i of active) out[i] = Math.min(Math.max(-alpha * s * w[i], -t[i]), 1 - t[i]);
}
