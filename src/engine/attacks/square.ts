import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../rng';
import { ThreatBall, normalizePerExample, perExampleNorm } from './geometry';
import { classificationMargin } from './losses';
import { QueryCounter, finishAttack, forward, oneHot, readAndDispose, startAttack } from './oracle';
import { exampleStreams } from './streams';
import { pick, replaceRows, replaceWhere, takeRows } from './tracking';
import {
  throwIfAborted,
  type AttackResult,
  type Classifier,
  type CommonAttackOptions,
  type Labels,
  type ThreatModel,
} from './types';

/**
 * Square Attack (Andriushchenko et al., ECCV 2020), score-based: it only reads the model's logits,
 * never a gradient. Random square updates at the boundary of the threat model are kept when they
 * lower the margin z_y - max_{i != y} z_i; the square side shrinks on AutoAttack's p schedule.
 * Follows AutoAttack's square.py (margin loss, stripes / tiled start, p_selection, the l_2 window
 * update with its norms per (example, channel)), with square positions and signs drawn per example
 * from the example's own stream.
 */

export interface SquareOptions extends CommonAttackOptions {
  threat: ThreatModel;
  eps: number;
  /** Query budget per example and restart. Default 5000. */
  queries?: number;
  /** Initial fraction of pixels changed per query. Default 0.8. */
  pInit?: number;
  restarts?: number;
  /** Rescale the p schedule to the query budget (square.py's resc_schedule; AutoAttack turns it off). */
  rescaleSchedule?: boolean;
}

export interface SquareResult extends AttackResult {
  /** Model queries spent per example (including the start), summed over restarts. */
  queries: Int32Array;
}

/** Python's round(): half to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The reference's p schedule: p_init halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 queries. */
export function squareFraction(iteration: number, pInit: number, queries: number, rescale: boolean): number {
  const it = rescale ? Math.floor((iteration / queries) * 10000) : iteration;
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let halvings = 0;
  for (const bound of bounds) if (it > bound) halvings++;
  return pInit / 2 ** halvings;
}

/** Side of the square for a fraction p of the image (l_inf: at least 1; l_2: odd, at least 3). */
export function squareSide(p: number, height: number, width: number, threat: ThreatModel): number {
  let s = roundHalfEven(Math.sqrt(p * height * width));
  if (threat === 'linf') s = Math.max(s, 1);
  else {
    s = Math.max(s, 3);
    if (s % 2 === 0) s += 1;
  }
  return Math.min(s, height, width);
}

/** A random offset in [0, limit) as the reference's random_int (0 when limit is 0). */
function offset(rng: Rng, limit: number): number {
  return Math.floor(rng.uniform() * limit);
}

function sign(rng: Rng): number {
  return rng.uniform() < 0.5 ? -1 : 1;
}

function etaRectangles(rows: number, cols: number): Float64Array {
  const delta = new Float64Array(rows * cols);
  if (rows === 0) return delta;
  const xc = Math.floor(rows / 2) + 1;
  const yc = Math.floor(cols / 2) + 1;
  let r0 = xc - 1;
  let c0 = yc - 1;
  for (let k = 0; k < Math.max(xc, yc); k++) {
    for (let i = Math.max(r0, 0); i < Math.min(r0 + 2 * k + 1, rows); i++) {
      for (let j = Math.max(c0, 0); j < Math.min(c0 + 2 * k + 1, cols); j++) delta[i * cols + j] += 1 / (k + 1) ** 2;
    }
    r0--;
    c0--;
  }
  normalize(delta);
  return delta;
}

function normalize(values: Float64Array): void {
  let sq = 0;
  for (const v of values) sq += v * v;
  const n = Math.sqrt(sq);
  if (n > 0) for (let i = 0; i < values.length; i++) values[i] /= n;
}

const etaCache = new Map<number, Float64Array>();

/** The l_2 update pattern of side s: positive rectangles on top, negative below, unit norm. */
export function etaPattern(s: number): Float64Array {
  const cached = etaCache.get(s);
  if (cached) return cached;
  const half = Math.floor(s / 2);
  const top = etaRectangles(half, s);
  const bottom = etaRectangles(s - half, s);
  const pattern = new Float64Array(s * s);
  pattern.set(top, 0);
  for (let i = 0; i < bottom.length; i++) pattern[half * s + i] = -bottom[i];
  normalize(pattern);
  etaCache.set(s, pattern);
  return pattern;
}

/** Write pattern (s x s, optionally transposed) into a [H, W] plane at (top, left), clipped to the plane. */
function placePattern(
  plane: Float32Array,
  width: number,
  height: number,
  pattern: Float64Array,
  s: number,
  top: number,
  left: number,
  transpose: boolean,
  scale: number,
): void {
  for (let i = 0; i < s && top + i < height; i++) {
    for (let j = 0; j < s && left + j < width; j++) {
      plane[(top + i) * width + left + j] += scale * (transpose ? pattern[j * s + i] : pattern[i * s + j]);
    }
  }
}

interface ActiveSet {
  rows: number[];
  x: tf.Tensor4D;
  xBest: tf.Tensor4D;
  yOneHot: tf.Tensor2D;
  ball: ThreatBall;
  margin: Float32Array;
  streams: Rng[];
}

async function marginsOf(
  model: Classifier,
  x: tf.Tensor4D,
  yOneHot: tf.Tensor2D,
  counter: QueryCounter,
): Promise<Float32Array> {
  const logits = forward(model, x, counter);
  const margin = await readAndDispose(classificationMargin(logits, yOneHot));
  logits.dispose();
  return margin;
}

/** The l_inf start: vertical stripes of +-eps, one sign per column and channel. */
function linfStart(streams: Rng[], shape: [number, number, number, number], eps: number): tf.Tensor4D {
  const [n, , width, channels] = shape;
  const stripes = new Float32Array(n * width * channels);
  streams.forEach((rng, r) => {
    for (let k = 0; k < width * channels; k++) stripes[r * width * channels + k] = eps * sign(rng);
  });
  return tf.tensor4d(stripes, [n, 1, width, channels]);
}

/** The l_2 start: a grid of eta patterns with random signs per channel, scaled to norm eps. */
function l2Start(streams: Rng[], shape: [number, number, number, number]): tf.Tensor4D {
  const [n, height, width, channels] = shape;
  const s = Math.max(Math.floor(height / 5), 1);
  const start = Math.max(Math.floor((height - s * 5) / 2), 0);
  const pattern = etaPattern(s);
  const delta = new Float32Array(n * height * width * channels);
  const plane = new Float32Array(height * width);
  streams.forEach((rng, r) => {
    for (let ti = 0; ti < Math.floor(height / s); ti++) {
      for (let tj = 0; tj < Math.floor(width / s); tj++) {
        const transpose = rng.uniform() > 0.5;
        for (let ch = 0; ch < channels; ch++) {
          plane.fill(0);
          placePattern(plane, width, height, pattern, s, start + ti * s, start + tj * s, transpose, sign(rng));
          for (let k = 0; k < height * width; k++) delta[(r * height * width + k) * channels + ch] += plane[k];
        }
      }
    }
  });
  return tf.tensor4d(delta, shape);
}

/** Per-example window masks [n, H, W, 1] from JS offsets. */
function windowMask(n: number, height: number, width: number, s: number, tops: number[], lefts: number[]): tf.Tensor4D {
  const rows = new Float32Array(n * height);
  const cols = new Float32Array(n * width);
  for (let r = 0; r < n; r++) {
    for (let i = tops[r]; i < Math.min(tops[r] + s, height); i++) rows[r * height + i] = 1;
    for (let j = lefts[r]; j < Math.min(lefts[r] + s, width); j++) cols[r * width + j] = 1;
  }
  return tf.tidy(
    () => tf.mul(tf.tensor4d(rows, [n, height, 1, 1]), tf.tensor4d(cols, [n, 1, width, 1])) as tf.Tensor4D,
  );
}

/** One query of the l_inf attack for the active examples: a square of +-2 eps per channel. */
function linfProposal(a: ActiveSet, s: number, eps: number): tf.Tensor4D {
  const [n, height, width, channels] = a.x.shape;
  const tops: number[] = [];
  const lefts: number[] = [];
  const signs = new Float32Array(n * channels);
  a.streams.forEach((rng, r) => {
    tops.push(offset(rng, height - s));
    lefts.push(offset(rng, width - s));
    for (let ch = 0; ch < channels; ch++) signs[r * channels + ch] = 2 * eps * sign(rng);
  });
  const mask = windowMask(n, height, width, s, tops, lefts);
  const proposal = tf.tidy(() =>
    a.ball.project(tf.add(a.xBest, tf.mul(mask, tf.tensor4d(signs, [n, 1, 1, channels])))),
  );
  mask.dispose();
  return proposal;
}

/** Where one l_2 query puts its windows, per example: the side, two top-left corners, the placed pattern, the signs. */
export interface L2Windows {
  side: number;
  tops: number[];
  lefts: number[];
  tops2: number[];
  lefts2: number[];
  /** The eta pattern placed at window 1 (optionally transposed), one [H, W] plane per example. */
  planes: Float32Array;
  /** A sign per (example, channel). */
  signs: Float32Array;
}

function drawL2Windows(a: ActiveSet, s: number): L2Windows {
  const [n, height, width, channels] = a.x.shape;
  const w: L2Windows = {
    side: s,
    tops: [],
    lefts: [],
    tops2: [],
    lefts2: [],
    planes: new Float32Array(n * height * width),
    signs: new Float32Array(n * channels),
  };
  const pattern = etaPattern(s);
  a.streams.forEach((rng, r) => {
    w.tops.push(offset(rng, height - s));
    w.lefts.push(offset(rng, width - s));
    w.tops2.push(offset(rng, height - s));
    w.lefts2.push(offset(rng, width - s));
    const transpose = rng.uniform() > 0.5;
    for (let ch = 0; ch < channels; ch++) w.signs[r * channels + ch] = sign(rng);
    const plane = w.planes.subarray(r * height * width, (r + 1) * height * width);
    placePattern(plane, width, height, pattern, s, w.tops[r] ?? 0, w.lefts[r] ?? 0, transpose, 1);
  });
  return w;
}

/**
 * The l_2 update of square.py: per (example, channel), the mass of delta in both windows plus the
 * share of the unused budget, (eps^2 - ||delta||^2)_+ / C, goes into a fresh pattern in window 1 and
 * window 2 is cleared, so each channel keeps its l_2 energy; then the whole delta is rescaled to eps.
 */
export function l2WindowStep(x: tf.Tensor4D, xBest: tf.Tensor4D, w: L2Windows, eps: number): tf.Tensor4D {
  const [n, height, width, channels] = x.shape;
  const m1 = windowMask(n, height, width, w.side, w.tops, w.lefts);
  const m2 = windowMask(n, height, width, w.side, w.tops2, w.lefts2);
  const proposal = tf.tidy(() => {
    const delta = tf.sub(xBest, x);
    // Norms over (H, W): one per (example, channel), as the reference's sum(dim=(-2, -1)).
    const channelNorm = (t: tf.Tensor) => tf.sqrt(tf.sum(tf.square(t), [1, 2], true));
    const window1Norms = channelNorm(tf.mul(delta, m1));
    const windowsNorms = channelNorm(tf.mul(delta, tf.maximum(m1, m2)));
    const imageNorm = tf.reshape(perExampleNorm(delta as tf.Tensor4D, 'l2'), [n, 1, 1, 1]);
    let fresh = tf.add(
      tf.mul(tf.tensor4d(w.planes, [n, height, width, 1]), tf.tensor4d(w.signs, [n, 1, 1, channels])),
      tf.div(tf.mul(delta, m1), tf.add(window1Norms, 1e-12)),
    );
    const budget = tf.sqrt(
      tf.add(tf.div(tf.relu(tf.sub(eps * eps, tf.square(imageNorm))), channels), tf.square(windowsNorms)),
    );
    fresh = tf.mul(tf.div(fresh, tf.add(channelNorm(fresh), 1e-12)), budget);
    const kept = tf.mul(delta, tf.mul(tf.sub(1, m2), tf.sub(1, m1)));
    const moved = tf.add(kept, fresh) as tf.Tensor4D;
    return tf.clipByValue(tf.add(x, tf.mul(normalizePerExample(moved, 'l2'), eps)), 0, 1) as tf.Tensor4D;
  });
  tf.dispose([m1, m2]);
  return proposal;
}

/** One query of the l_2 attack: move mass from a second window into a fresh pattern in the first. */
function l2Proposal(a: ActiveSet, s: number, eps: number): tf.Tensor4D {
  return l2WindowStep(a.x, a.xBest, drawL2Windows(a, s), eps);
}

interface SquareRun {
  points: tf.Tensor4D;
  fooled: boolean[];
  queries: Int32Array;
}

async function squareRun(
  model: Classifier,
  x: tf.Tensor4D,
  y: Int32Array,
  classes: number,
  streams: Rng[],
  options: SquareOptions,
  counter: QueryCounter,
  report: (done: number, active: number) => void,
): Promise<SquareRun> {
  const { threat, eps } = options;
  const budget = options.queries ?? 5000;
  const pInit = options.pInit ?? 0.8;
  const [n, height, width] = x.shape;
  const yOneHot = oneHot(y, classes);
  const ball = new ThreatBall(x, eps, threat);
  let xBest: tf.Tensor4D;
  if (threat === 'linf') {
    const stripes = linfStart(streams, x.shape, eps);
    xBest = tf.tidy(() => tf.clipByValue(tf.add(x, stripes), 0, 1) as tf.Tensor4D);
    stripes.dispose();
  } else {
    const init = l2Start(streams, x.shape);
    xBest = tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(normalizePerExample(init, 'l2'), eps)), 0, 1) as tf.Tensor4D);
    init.dispose();
  }
  const margin = await marginsOf(model, xBest, yOneHot, counter);
  const queries = new Int32Array(n).fill(1);
  let result = tf.clone(xBest);
  let active: ActiveSet = { rows: Array.from(y.keys()), x: tf.clone(x), xBest, yOneHot, ball, margin, streams };

  /** Drop fooled examples from the active set, saving their points. */
  const compact = () => {
    const keep = active.rows.map((_, j) => (active.margin[j] ?? 0) > 0);
    if (keep.every(Boolean)) return;
    result = replaceRows(
      result,
      active.rows,
      active.xBest,
      active.rows.map(() => true),
    );
    const positions = Int32Array.from(keep.flatMap((k, j) => (k ? [j] : [])));
    const index = tf.tensor1d(positions, 'int32');
    const nextX = tf.gather(active.x, index);
    const next: ActiveSet = {
      rows: Array.from(positions, (j) => active.rows[j] ?? 0),
      x: nextX,
      xBest: tf.gather(active.xBest, index),
      yOneHot: tf.gather(active.yOneHot, index),
      ball: new ThreatBall(nextX, eps, threat),
      margin: Float32Array.from(positions, (j) => active.margin[j] ?? 0),
      streams: Array.from(positions, (j) => active.streams[j] as Rng),
    };
    index.dispose();
    tf.dispose([active.x, active.xBest, active.yOneHot]);
    active.ball.dispose();
    active = next;
  };

  try {
    compact();
    for (let it = 0; it < budget && active.rows.length > 0; it++) {
      throwIfAborted(options.signal);
      const p = squareFraction(it, pInit, budget, options.rescaleSchedule ?? false);
      const s = squareSide(p, height, width, threat);
      const proposal = threat === 'linf' ? linfProposal(active, s, eps) : l2Proposal(active, s, eps);
      const proposed = await marginsOf(model, proposal, active.yOneHot, counter);
      const accept = Array.from(proposed, (m, j) => m < (active.margin[j] ?? 0) || m <= 0);
      accept.forEach((ok, j) => {
        if (ok) active.margin[j] = proposed[j] ?? 0;
        const row = active.rows[j] ?? 0;
        queries[row] = (queries[row] ?? 0) + 1;
      });
      if (accept.some(Boolean)) active.xBest = replaceWhere(active.xBest, accept, proposal);
      proposal.dispose();
      compact();
      report(it + 1, active.rows.length);
    }
    result = replaceRows(
      result,
      active.rows,
      active.xBest,
      active.rows.map(() => true),
    );
    const fooled = new Array<boolean>(n).fill(true);
    active.rows.forEach((r) => (fooled[r] = false));
    return { points: result, fooled, queries };
  } catch (error) {
    result.dispose();
    throw error;
  } finally {
    // The active set owns its tensors (the first one owns yOneHot and ball).
    tf.dispose([active.x, active.xBest, active.yOneHot]);
    active.ball.dispose();
  }
}

/**
 * Square Attack on the examples the model classifies correctly; each restart attacks only examples
 * still robust. Never takes a gradient.
 */
export async function square(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  options: SquareOptions,
): Promise<SquareResult> {
  const restarts = options.restarts ?? 1;
  const budget = options.queries ?? 5000;
  const start = await startAttack(model, x, labels, options.ids);
  const { y, ids, counter, clean } = start;
  clean.logits.dispose();
  const robust = [...clean.correct];
  const queries = new Int32Array(y.length);
  let xAdv = tf.clone(x);
  for (let restart = 0; restart < restarts; restart++) {
    const rows = Array.from(y.keys()).filter((i) => robust[i]);
    if (rows.length === 0) break;
    const xs = takeRows(x, rows);
    try {
      const run = await squareRun(
        model,
        xs,
        pick(y, rows),
        clean.classes,
        exampleStreams(options.seed ?? 0, pick(ids, rows), 'square', restart),
        options,
        counter,
        (done, active) =>
          options.onProgress?.({ attack: 'square', done: restart * budget + done, total: restarts * budget, active }),
      );
      xAdv = replaceRows(xAdv, rows, run.points, run.fooled);
      rows.forEach((r, j) => {
        queries[r] = (queries[r] ?? 0) + (run.queries[j] ?? 0);
        if (run.fooled[j]) robust[r] = false;
      });
      run.points.dispose();
    } finally {
      xs.dispose();
    }
  }
  const outcome = await finishAttack(start, xAdv, options.threat, (_xa, z) => {
    const yOneHot = oneHot(y, clean.classes);
    return classificationMargin(z, yOneHot);
  });
  return { ...outcome, queries };
}
