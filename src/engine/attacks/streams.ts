import { Rng } from '../rng';

/**
 * Per-example random streams. Every random draw an attack makes for an example comes from a generator
 * keyed by (seed, example id, attack stage, round), so the example's result is the same whether it is
 * attacked alone, in any batch, or inside AutoAttack after other attacks removed its neighbours.
 */

function mix(h: number, value: number): number {
  let x = (h ^ (value >>> 0)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function hashTag(tag: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function streamSeed(seed: number, id: number, tag: string, round: number): number {
  return mix(mix(mix(mix(0x9e3779b9, seed), id), hashTag(tag)), round);
}

/** One generator per example for one stage (`tag`) and round (restart, target). */
export function exampleStreams(seed: number, ids: ArrayLike<number>, tag: string, round: number): Rng[] {
  return Array.from(ids, (id) => new Rng(streamSeed(seed, id, tag, round)));
}

/** Row i: `perRow` uniforms in [-1, 1) from stream i. */
export function signedUniformRows(streams: Rng[], perRow: number): Float32Array {
  const out = new Float32Array(streams.length * perRow);
  streams.forEach((rng, i) => {
    for (let j = 0; j < perRow; j++) out[i * perRow + j] = 2 * rng.uniform() - 1;
  });
  return out;
}

/** Row i: `perRow` standard normals from stream i. */
export function normalRows(streams: Rng[], perRow: number): Float32Array {
  const out = new Float32Array(streams.length * perRow);
  streams.forEach((rng, i) => {
    for (let j = 0; j < perRow; j++) out[i * perRow + j] = rng.normal();
  });
  return out;
}
