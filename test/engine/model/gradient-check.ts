import { expect } from 'vitest';
import type * as ref from './reference';

/** Finite-difference checks of the model's gradients against the float64 reference (reference.ts). */

const H = 1e-5;

/** Central difference of a float64 function of one perturbed value. */
export function centralDiff(f: (shift: number) => number): number {
  return (f(H) - f(-H)) / (2 * H);
}

/** The analytic (float32, tfjs) gradient must match float64 finite differences. */
export function expectClose(analytic: number[], numeric: number[], label: string): void {
  const norm = Math.sqrt(numeric.reduce((a, v) => a + v * v, 0));
  const err = Math.sqrt(analytic.reduce((a, v, i) => a + (v - (numeric[i] ?? 0)) ** 2, 0));
  console.info(
    `${label}: ${numeric.length} coordinates, |fd| ${norm.toExponential(2)}, relative error ${(err / norm).toExponential(2)}`,
  );
  expect(norm).toBeGreaterThan(1e-3); // the sampled coordinates carry real gradient
  expect(err / norm).toBeLessThan(2e-3);
  analytic.forEach((g, i) =>
    expect(Math.abs(g - (numeric[i] ?? 0))).toBeLessThan(1e-4 + 1e-2 * Math.abs(numeric[i] ?? 0)),
  );
}

export function withShift(params: ref.RefParams, name: string, index: number, shift: number): ref.RefParams {
  const copy = new Map(params);
  const values = Float64Array.from(params.get(name) ?? []);
  values[index] = (values[index] ?? 0) + shift;
  copy.set(name, values);
  return copy;
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
