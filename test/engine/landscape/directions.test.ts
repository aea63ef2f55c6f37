import { describe, expect, it } from 'vitest';
import { filterIndices, filterNorms, planeDirections, type WeightValues } from '../../../src/engine/landscape';
import { classifierParamSpecs } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { modelConfigFromPreset } from '../../../src/shared/model-config';

/** Weights with every filter of a different scale, so a per-tensor normalisation would fail the check. */
function weightsFor(shapes: [string, number[]][], seed: number): Map<string, WeightValues> {
  const rng = new Rng(seed);
  return new Map(
    shapes.map(([name, shape]) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      for (let i = 0; i < size; i++) data[i] = rng.normal() * (1 + (i % 7));
      return [name, { shape, data }];
    }),
  );
}

const SHAPES: [string, number[]][] = [
  ['cls_token', [1, 1, 8]],
  ['patch_embed.proj.weight', [12, 8]],
  ['patch_embed.proj.bias', [8]],
  ['blocks.0.norm1.weight', [8]],
  ['head.weight', [8, 3]],
];

/** Filter norms in float64 written out independently of filterIndices: columns of [in, out], rows of the first axis. */
function referenceFilterNorms(shape: number[], data: ArrayLike<number>): number[] {
  if (shape.length === 2) {
    const [rows = 0, cols = 0] = shape;
    return Array.from({ length: cols }, (_, j) => {
      let s = 0;
      for (let i = 0; i < rows; i++) s += (data[i * cols + j] ?? 0) ** 2;
      return Math.sqrt(s);
    });
  }
  const first = shape[0] ?? 1;
  const per = data.length / first;
  return Array.from({ length: first }, (_, f) => {
    let s = 0;
    for (let i = 0; i < per; i++) s += (data[f * per + i] ?? 0) ** 2;
    return Math.sqrt(s);
  });
}

describe('filter-normalised random directions (Li et al. 2018)', () => {
  it('give every filter of each direction the norm of the same filter of the weights; biases and norms get zero', () => {
    const weights = weightsFor(SHAPES, 3);
    const [d1, d2] = planeDirections(weights, 11);
    let worst = 0;
    for (const [name, w] of weights) {
      for (const d of [d1, d2]) {
        const values = d.get(name);
        if (w.shape.length <= 1) {
          expect(values, name).toBeNull();
          continue;
        }
        if (!values) throw new Error(`no direction for ${name}`);
        const want = referenceFilterNorms([...w.shape], w.data);
        const got = referenceFilterNorms([...w.shape], values);
        expect(got.length).toBe(w.shape.length === 2 ? w.shape[1] : w.shape[0]);
        got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g - (want[i] ?? 0)) / (want[i] ?? 1))));
      }
    }
    console.info(`  worst relative filter-norm error ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-6);
    // filterNorms agrees with the independent reference, and a per-tensor scaling would not pass.
    const head = weights.get('head.weight');
    if (!head) throw new Error('no head');
    expect(Array.from(filterNorms(head.shape, head.data))).toEqual(
      referenceFilterNorms([...head.shape], head.data).map((x) => expect.closeTo(x, 10)),
    );
    expect(new Set(referenceFilterNorms([...head.shape], head.data).map((x) => x.toFixed(3))).size).toBe(3);
  });

  it('copy biases and norms unscaled when they are not ignored', () => {
    const weights = weightsFor(SHAPES, 4);
    const [d1, d2] = planeDirections(weights, 5, { ignoreBiasNorm: false });
    for (const name of ['patch_embed.proj.bias', 'blocks.0.norm1.weight']) {
      const w = weights.get(name);
      expect(Array.from(d1.get(name) ?? [])).toEqual(Array.from(w?.data ?? [1]));
      expect(Array.from(d2.get(name) ?? [])).toEqual(Array.from(w?.data ?? [1]));
    }
    // Weights' directions do not depend on the setting: every element draws from the stream either way.
    const [ignored] = planeDirections(weights, 5);
    expect(Array.from(ignored.get('head.weight') ?? [])).toEqual(Array.from(d1.get('head.weight') ?? [0]));
  });

  it('repeat for a seed, differ between seeds and between the two axes', () => {
    const weights = weightsFor(SHAPES, 6);
    const [a1, a2] = planeDirections(weights, 42);
    const [b1, b2] = planeDirections(weights, 42);
    const [c1] = planeDirections(weights, 43);
    for (const name of weights.keys()) {
      expect(b1.get(name)).toEqual(a1.get(name));
      expect(b2.get(name)).toEqual(a2.get(name));
    }
    const flat = (d: Map<string, Float32Array | null>) => Array.from(d.get('patch_embed.proj.weight') ?? []);
    expect(flat(c1)).not.toEqual(flat(a1));
    expect(flat(a2)).not.toEqual(flat(a1));
    // Two independent Gaussian directions are nearly orthogonal in many dimensions.
    const x = flat(a1);
    const y = flat(a2);
    const dot = x.reduce((s, v, i) => s + v * (y[i] ?? 0), 0);
    const cos = dot / Math.sqrt(x.reduce((s, v) => s + v * v, 0) * y.reduce((s, v) => s + v * v, 0));
    expect(Math.abs(cos)).toBeLessThan(0.35);
  });

  it('split every parameter of the ViT classifier into the filters of its torch counterpart', () => {
    const config = modelConfigFromPreset('micro', 16);
    for (const spec of classifierParamSpecs(config, 10)) {
      const filters = filterIndices(spec.shape);
      if (spec.shape.length <= 1) {
        expect(filters, spec.name).toBeNull();
        continue;
      }
      // torch: linear weight [out, in] and conv [out, C, p, p] have `out` filters; tokens [1, 1, D] one.
      const expected = spec.role === 'token' ? 1 : spec.shape[1];
      expect(filters?.length, spec.name).toBe(expected);
      const seen = new Set(filters?.flatMap((f) => Array.from(f)));
      expect(seen.size, spec.name).toBe(spec.shape.reduce((a, b) => a * b, 1));
    }
  });
});
