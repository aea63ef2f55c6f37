import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import {
  classifierForward,
  disposeParams,
  initMaeParams,
  randomMasking,
  type ParamMap,
  type PatchMask,
} from '../../../src/engine/model';
import { numPatches, type ModelConfig } from '../../../src/shared/model-config';
import { randomImages, randomizeParams, Rng, toRefParams } from './fixtures';
import * as ref from './reference';

/** Finite-difference checks of the model's gradients against the float64 reference (reference.ts). */

const H = 1e-5;

/** Central difference of a float64 function of one perturbed value. */
export function centralDiff(f: (shift: number) => number): number {
  return (f(H) - f(-H)) / (2 * H);
}

/**
 * The analytic (float32, tfjs) gradient must match float64 finite differences; `minNorm`: how large
 * the sampled coordinates' finite-difference gradient must be (that they carry real gradient).
 */
export function expectClose(
  analytic: number[],
  numeric: number[],
  label: string,
  { minNorm = 1e-3 }: { minNorm?: number } = {},
): void {
  const norm = Math.sqrt(numeric.reduce((a, v) => a + v * v, 0));
  const err = Math.sqrt(analytic.reduce((a, v, i) => a + (v - (numeric[i] ?? 0)) ** 2, 0));
  console.info(
    `${label}: ${numeric.length} coordinates, |fd| ${norm.toExponential(2)}, relative error ${(err / norm).toExponential(2)}`,
  );
  expect(norm).toBeGreaterThan(minNorm);
  expect(err / norm).toBeLessThan(2e-3);
  analytic.forEach((g, i) =>
    expect(Math.abs(g - (numeric[i] ?? 0)), `${label} #${i}`).toBeLessThan(1e-4 + 1e-2 * Math.abs(numeric[i] ?? 0)),
  );
}

export function withShift(params: ref.RefParams, name: string, index: number, shift: number): ref.RefParams {
  const copy = new Map(params);
  const values = Float64Array.from(params.get(name) ?? []);
  values[index] = (values[index] ?? 0) + shift;
  copy.set(name, values);
  return copy;
}

/**
 * Every parameter's gradient after checking that it is there, of the parameter's shape, finite and not
 * all zero (read asynchronously: webgpu under Node has no synchronous read).
 */
export async function checkedGradients(params: ParamMap, grads: tf.NamedTensorMap): Promise<Map<string, Float32Array>> {
  expect(Object.keys(grads).length).toBe(params.size);
  const byName = new Map<string, Float32Array>();
  for (const [name, v] of params) {
    const g = grads[v.name];
    expect(g, name).toBeDefined();
    if (!g) continue;
    expect(g.shape).toEqual(v.shape);
    const data = Float32Array.from(await g.data());
    expect(data.every(Number.isFinite), name).toBe(true);
    expect(Math.max(...Array.from(data, Math.abs)), `${name} has a zero gradient`).toBeGreaterThan(0);
    byName.set(name, data);
  }
  return byName;
}

/**
 * The analytic gradient at each probe (`gradient(name)[index]`) beside the float64 central difference
 * of `loss` with that one parameter value shifted.
 */
export function probeParams(
  probes: [string, number[]][],
  gradient: (name: string) => ArrayLike<number> | undefined,
  refParams: ref.RefParams,
  loss: (params: ref.RefParams) => number,
): Probed {
  const analytic: number[] = [];
  const numeric: number[] = [];
  for (const [name, indices] of probes) {
    const g = gradient(name);
    for (const index of indices) {
      analytic.push(g?.[index] ?? NaN);
      numeric.push(centralDiff((s) => loss(withShift(refParams, name, index, s))));
    }
  }
  return { analytic, numeric };
}

/** Float64 central differences of `f` at flat indices `coords` of the images (one after the other, each NHWC). */
function probeImages(images: Float64Array[], coords: number[], f: (images: Float64Array[]) => number): number[] {
  const size = images[0]?.length ?? 0;
  return coords.map((c) =>
    centralDiff((s) => f(images.map((a, si) => a.map((v, i) => v + (si * size + i === c ? s : 0))))),
  );
}

/** sum_sj w_sj logits_sj for random w [n, classes]: as a tensor for tfjs and as a float64 objective. */
function logitsObjective(
  rng: Rng,
  n: number,
  classes: number,
): { w: tf.Tensor2D; objective: (logits: ArrayLike<number>[]) => number } {
  const weights = Array.from({ length: n * classes }, () => rng.normal());
  const objective = (logits: ArrayLike<number>[]) =>
    logits.reduce(
      (acc, row, s) => acc + Array.from(row).reduce((a, v, j) => a + v * (weights[s * classes + j] ?? 0), 0),
      0,
    );
  return { w: tf.tensor2d(weights, [n, classes]), objective };
}

/** Analytic gradients beside float64 central differences, coordinate by coordinate. */
export interface Probed {
  analytic: number[];
  numeric: number[];
}

/**
 * The gradient of sum(w * logits) of the classifier `cls` (w from logitsObjective(rng)), analytic
 * (tfjs) beside float64 central differences (reference.ts): at each parameter probe, and at the flat
 * pixel indices `pixels` of the images with the parameters frozen; `gradients`: how many parameters
 * got one.
 */
export function probeClassifier(
  cls: ParamMap,
  config: ModelConfig,
  images: ReturnType<typeof randomImages>,
  rng: Rng,
  { classes, params, pixels }: { classes: number; params: [string, number[]][]; pixels: number[] },
): { params: Probed; pixels: Probed; gradients: number } {
  const refCls = toRefParams(cls);
  const { w, objective } = logitsObjective(rng, images.arrays.length, classes);
  const { value, grads } = tf.variableGrads(() =>
    tf.sum(tf.mul(classifierForward(cls, config, images.tensor).logits, w)),
  );
  const paramProbes = probeParams(
    params,
    (name) => grads[cls.get(name)?.name ?? '']?.dataSync(),
    refCls,
    (p) => objective(ref.classifierLogits(p, config, images.arrays)),
  );
  const gradients = Object.keys(grads).length;
  const gx = tf.grad((x) =>
    tf.sum(tf.mul(classifierForward(cls, config, x as tf.Tensor4D, { trainParams: false }).logits, w)),
  )(images.tensor);
  const gxValues = gx.dataSync();
  const pixelProbes = {
    analytic: pixels.map((c) => gxValues[c] ?? NaN),
    numeric: probeImages(images.arrays, pixels, (x) => objective(ref.classifierLogits(refCls, config, x))),
  };
  tf.dispose([value, grads, w, gx]);
  return { params: paramProbes, pixels: pixelProbes, gradients };
}

/** The gradient probes' subject: randomised MAE parameters, their float64 copy, images and a mask. */
export interface ProbeSubject {
  params: ParamMap;
  refParams: ref.RefParams;
  images: ReturnType<typeof randomImages>;
  mask: PatchMask;
  /** The mask's visible patch ids, per sample. */
  visible: number[][];
}

/** A ProbeSubject of `n` samples, all drawn from Rng(seed): parameters (then `randomize`d), images, mask. */
export function probeSubject(
  config: ModelConfig,
  n: number,
  {
    seed,
    maskRatio,
    randomize = randomizeParams,
  }: { seed: number; maskRatio: number; randomize?: typeof randomizeParams },
): ProbeSubject {
  const rng = new Rng(seed);
  const params = initMaeParams(config, rng);
  randomize(params, rng);
  const refParams = toRefParams(params);
  const images = randomImages(rng, n, config);
  const mask = randomMasking(rng, n, numPatches(config), maskRatio);
  return { params, refParams, images, mask, visible: mask.visible.map((v) => Array.from(v)) };
}

export function disposeProbeSubject(subject: ProbeSubject): void {
  disposeParams(subject.params);
  subject.images.tensor.dispose();
  subject.mask.dispose();
}

/** A few coordinates of each kind of parameter. */
export const PROBES: [string, number[]][] = [
  ['cls_token', [3]],
  ['patch_embed.proj.weight', [5, 700]],
  ['patch_embed.proj.bias', [2]],
  ['blocks.0.norm1.weight', [7]],
  ['blocks.0.attn.qkv.weight', [10, 3022, 1030]], // a q, a k and a v column
  ['blocks.1.attn.qkv.bias', [40, 70]],
  ['blocks.1.attn.proj.weight', [33]],
  ['blocks.1.mlp.fc1.weight', [123]],
  ['blocks.0.mlp.fc2.bias', [4]],
  ['norm.bias', [9]],
  ['mask_token', [1]],
  ['decoder_embed.weight', [77]],
  ['decoder_blocks.0.attn.qkv.weight', [300, 2000]],
  ['decoder_blocks.0.norm2.bias', [12]],
  ['decoder_norm.weight', [3]],
  ['decoder_pred.weight', [500]],
  ['decoder_pred.bias', [6]],
];
