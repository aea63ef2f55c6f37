import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LandscapeCancelledError,
  planeDirections,
  sweepPlane,
  type Direction,
  type PointEvaluator,
  type WeightValues,
} from '../../../src/engine/landscape';
import type { ParamMap } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { gridCoordinates } from '../../../src/shared/landscape';
import { useBackend } from '../../helpers/backend';

const D = 6;
const C = 4;
const N = 9;

interface Linear {
  params: ParamMap;
  weights: Map<string, WeightValues>;
  x: number[][];
  y: number[];
  xTensor: tf.Tensor2D;
  yOneHot: tf.Tensor2D;
  dispose(): void;
}

/** A linear softmax classifier z = x W + b, W [D, C] (a filter per class column), b [C]. */
function linearClassifier(seed: number): Linear {
  const rng = new Rng(seed);
  const w = Float32Array.from({ length: D * C }, () => rng.normal() * 0.8);
  const b = Float32Array.from({ length: C }, () => rng.normal() * 0.3);
  const x = Array.from({ length: N }, () => Array.from({ length: D }, () => Math.fround(rng.normal())));
  const y = Array.from({ length: N }, () => rng.int(C));
  const params: ParamMap = new Map<string, tf.Variable>([
    ['w', tf.variable(tf.tensor2d(w, [D, C]))],
    ['b', tf.variable(tf.tensor1d(b))],
  ]);
  const xTensor = tf.tensor2d(x.flat(), [N, D]);
  const yOneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), C), 'float32') as tf.Tensor2D);
  const weights = new Map<string, WeightValues>([
    ['w', { shape: [D, C], data: w }],
    ['b', { shape: [C], data: b }],
  ]);
  return {
    params,
    weights,
    x,
    y,
    xTensor,
    yOneHot,
    dispose: () => {
      for (const v of params.values()) v.dispose();
      tf.dispose([xTensor, yOneHot]);
    },
  };
}

function crossEntropyEvaluator(m: Linear): PointEvaluator {
  return async () => {
    const ce = tf.tidy(() => {
      const w = m.params.get('w');
      const b = m.params.get('b');
      if (!w || !b) throw new Error('params');
      const logits = tf.add(tf.matMul(m.xTensor, w), b);
      return tf.mean(tf.neg(tf.sum(tf.mul(m.yOneHot, tf.logSoftmax(logits)), 1)));
    });
    const value = (await ce.data())[0] ?? NaN;
    ce.dispose();
    return { loss: value, accuracy: null };
  };
}

/** Float64 reference of the mean CE at W0 + a D1 + b D2, B0 + a E1 + b E2 (E = the bias directions, or zero). */
function referenceCe(m: Linear, dirs: [Direction, Direction], a: number, bb: number): number {
  const w0 = m.weights.get('w')?.data ?? new Float32Array();
  const b0 = m.weights.get('b')?.data ?? new Float32Array();
  const at = (name: string, base: Float32Array, i: number) =>
    (base[i] ?? 0) + a * (dirs[0].get(name)?.[i] ?? 0) + bb * (dirs[1].get(name)?.[i] ?? 0);
  let total = 0;
  m.x.forEach((xi, n) => {
    const z = Array.from({ length: C }, (_, k) =>
      xi.reduce((s, v, d) => s + v * at('w', w0, d * C + k), at('b', b0, k)),
    );
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - (z[m.y[n] ?? 0] ?? 0);
  });
  return total / m.x.length;
}

function snapshot(params: ParamMap): Map<string, Float32Array> {
  return new Map([...params].map(([name, v]) => [name, Float32Array.from(v.dataSync())]));
}

function expectBitwiseEqual(params: ParamMap, before: Map<string, Float32Array>): void {
  for (const [name, v] of params) {
    const now = new Uint32Array(Float32Array.from(v.dataSync()).buffer);
    const then = new Uint32Array((before.get(name) ?? new Float32Array()).buffer);
    expect(Array.from(now), name).toEqual(Array.from(then));
  }
}

describe.each(['cpu', 'wasm'] as const)('sweepPlane on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('matches a float64 linear-classifier slice at every point, the centre being the model itself', async () => {
    const m = linearClassifier(1);
    const before = snapshot(m.params);
    const tensorsBefore = tf.memory().numTensors;
    const alphas = gridCoordinates(5, [-1, 1]);
    const betas = gridCoordinates(4, [-0.5, 1]);
    for (const ignoreBiasNorm of [true, false]) {
      const dirs = planeDirections(m.weights, 7, { ignoreBiasNorm });
      const grid = await sweepPlane(m.params, dirs, alphas, betas, crossEntropyEvaluator(m));
      expect(grid.length).toBe(betas.length);
      let worst = 0;
      grid.forEach((row, r) => {
        expect(row.length).toBe(alphas.length);
        row.forEach((v, c) => {
          const want = referenceCe(m, dirs, alphas[c] ?? 0, betas[r] ?? 0);
          worst = Math.max(worst, Math.abs(v.loss - want) / Math.max(1, Math.abs(want)));
        });
      });
      console.info(
        `  ${backend} ignoreBiasNorm=${ignoreBiasNorm}: worst relative error vs float64 ${worst.toExponential(2)}`,
      );
      expect(worst).toBeLessThan(2e-6);
      const centre = await crossEntropyEvaluator(m)();
      expect(grid[betas.indexOf(0)]?.[alphas.indexOf(0)]?.loss).toBe(centre.loss);
      // The landscape is not flat: the directions do move the loss.
      const losses = grid.flat().map((v) => v.loss);
      expect(Math.max(...losses) - Math.min(...losses)).toBeGreaterThan(0.1);
    }
    expectBitwiseEqual(m.params, before);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    m.dispose();
  });

  it('traces a quadratic bowl exactly: f(a, b) = |r + a d1 + b d2|^2', async () => {
    const rng = new Rng(9);
    const theta = Float32Array.from({ length: 12 }, () => rng.normal());
    const target = Float32Array.from({ length: 12 }, () => rng.normal());
    const params: ParamMap = new Map([['theta', tf.variable(tf.tensor2d(theta, [3, 4]))]]);
    const targetTensor = tf.tensor2d(target, [3, 4]);
    const dirs = planeDirections(new Map([['theta', { shape: [3, 4], data: theta }]]), 3);
    const evaluate: PointEvaluator = async () => {
      const t = tf.tidy(() => tf.sum(tf.squaredDifference(params.get('theta') ?? targetTensor, targetTensor)));
      const loss = (await t.data())[0] ?? NaN;
      t.dispose();
      return { loss, accuracy: null };
    };
    const alphas = gridCoordinates(3, [-2, 2]);
    const grid = await sweepPlane(params, dirs, alphas, alphas, evaluate);
    const d1 = dirs[0].get('theta') ?? new Float32Array();
    const d2 = dirs[1].get('theta') ?? new Float32Array();
    const r = Array.from(theta, (v, i) => v - (target[i] ?? 0));
    const dot = (u: ArrayLike<number>, v: ArrayLike<number>) =>
      Array.from(u).reduce((s, x, i) => s + x * (v[i] ?? 0), 0);
    const f = (a: number, b: number) =>
      dot(r, r) +
      2 * a * dot(r, d1) +
      2 * b * dot(r, d2) +
      a * a * dot(d1, d1) +
      2 * a * b * dot(d1, d2) +
      b * b * dot(d2, d2);
    grid.forEach((row, i) => row.forEach((v, j) => expect(v.loss).toBeCloseTo(f(alphas[j] ?? 0, alphas[i] ?? 0), 4)));
    for (const v of params.values()) v.dispose();
    targetTensor.dispose();
  });

  it('restores the weights bitwise and leaks nothing when cancelled or when the evaluation throws', async () => {
    const m = linearClassifier(2);
    const before = snapshot(m.params);
    const tensorsBefore = tf.memory().numTensors;
    const dirs = planeDirections(m.weights, 1, { ignoreBiasNorm: false });
    const alphas = gridCoordinates(3, [-1, 1]);

    const controller = new AbortController();
    let evaluated = 0;
    await expect(
      sweepPlane(m.params, dirs, alphas, alphas, crossEntropyEvaluator(m), {
        signal: controller.signal,
        onPoint: () => {
          evaluated += 1;
          if (evaluated === 4) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(LandscapeCancelledError);
    expect(evaluated).toBe(4);
    expectBitwiseEqual(m.params, before);
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    let calls = 0;
    const failing: PointEvaluator = async () => {
      calls += 1;
      if (calls === 2) throw new Error('boom');
      return { loss: 0, accuracy: null };
    };
    await expect(sweepPlane(m.params, dirs, alphas, alphas, failing)).rejects.toThrow('boom');
    expectBitwiseEqual(m.params, before);
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    const stranger: Direction = new Map([['nope', new Float32Array(1)]]);
    await expect(sweepPlane(m.params, [stranger, stranger], alphas, alphas, failing)).rejects.toThrow('"nope"');
    m.dispose();
  });
});
