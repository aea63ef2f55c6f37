/**
 * An independent float64 implementation of spec section 4 in plain JavaScript, for the tests:
 * kernels from explicit pairwise differences, HSIC and nHSIC from explicit matrix products with H,
 * the inverse by LU decomposition with column solves, and eigenvalues by cyclic Jacobi rotations
 * (the engine uses Gauss-Jordan and Householder + QL). Matrices are number[][].
 */
import { Rng } from '../../../src/engine/rng';

export type Matrix = number[][];

export interface RefOptions {
  sigma: number;
  bandwidth: 'fixed' | 'median';
  alpha: number;
  epsR: number;
}

/** Standard normal entries rounded to float32, so that the engine and the reference see the same numbers. */
export function randomMatrix(rng: Rng, rows: number, cols: number, scale = 1): Matrix {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => Math.fround(scale * rng.normal())));
}

const zeros = (n: number, m: number): Matrix => Array.from({ length: n }, () => new Array<number>(m).fill(0));
const identity = (n: number): Matrix =>
  Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
const get = (m: Matrix, i: number, j: number): number => m[i]?.[j] ?? Number.NaN;

export function matMul(a: Matrix, b: Matrix): Matrix {
  const n = a.length;
  const k = b.length;
  const m = b[0]?.length ?? 0;
  const out = zeros(n, m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += get(a, i, t) * get(b, t, j);
      (out[i] as number[])[j] = s;
    }
  }
  return out;
}

const trace = (m: Matrix): number => m.reduce((s, row, i) => s + (row[i] as number), 0);

export function squaredDistances(x: Matrix): Matrix {
  const n = x.length;
  const out = zeros(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      const xi = x[i] as number[];
      const xj = x[j] as number[];
      for (let t = 0; t < xi.length; t++) s += ((xi[t] as number) - (xj[t] as number)) ** 2;
      (out[i] as number[])[j] = s;
    }
  }
  return out;
}

export function kernel(x: Matrix, opts: RefOptions): Matrix {
  const n = x.length;
  const d = x[0]?.length ?? 0;
  const dist = squaredDistances(x);
  let s2 = opts.sigma * opts.sigma * d;
  if (opts.bandwidth === 'median') {
    const pairs: number[] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push(get(dist, i, j));
    pairs.sort((p, q) => p - q);
    const mid = pairs.length >> 1;
    s2 = pairs.length % 2 === 1 ? (pairs[mid] as number) : 0.5 * ((pairs[mid - 1] as number) + (pairs[mid] as number));
  }
  return dist.map((row) => row.map((v) => Math.exp(-v / (2 * s2))));
}

const centering = (n: number): Matrix => identity(n).map((row) => row.map((v) => v - 1 / n));

export function hsicRef(a: Matrix, b: Matrix, opts: RefOptions): number {
  const n = a.length;
  const h = centering(n);
  return trace(matMul(matMul(matMul(kernel(a, opts), h), kernel(b, opts)), h)) / (n * n);
}

/** Inverse by LU decomposition (Doolittle, partial pivoting) and n column solves. */
export function luInverse(m: Matrix): Matrix {
  const n = m.length;
  const lu = m.map((row) => [...row]);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(get(lu, i, k)) > Math.abs(get(lu, p, k))) p = i;
    [lu[k], lu[p]] = [lu[p] as number[], lu[k] as number[]];
    [perm[k], perm[p]] = [perm[p] as number, perm[k] as number];
    for (let i = k + 1; i < n; i++) {
      const f = get(lu, i, k) / get(lu, k, k);
      (lu[i] as number[])[k] = f;
      for (let j = k + 1; j < n; j++) (lu[i] as number[])[j] = get(lu, i, j) - f * get(lu, k, j);
    }
  }
  const inv = zeros(n, n);
  for (let col = 0; col < n; col++) {
    const y = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) {
      let s = perm[i] === col ? 1 : 0;
      for (let j = 0; j < i; j++) s -= get(lu, i, j) * (y[j] as number);
      y[i] = s;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i] as number;
      for (let j = i + 1; j < n; j++) s -= get(lu, i, j) * get(inv, j, col);
      (inv[i] as number[])[col] = s / get(lu, i, i);
    }
  }
  return inv;
}

export function nhsicRef(a: Matrix, b: Matrix, opts: RefOptions): number {
  const n = a.length;
  const h = centering(n);
  const r = (x: Matrix): Matrix => {
    const kc = matMul(kernel(x, opts), h);
    const reg = kc.map((row, i) => row.map((v, j) => v + (i === j ? opts.epsR * n : 0)));
    return matMul(kc, luInverse(reg));
  };
  return trace(matMul(r(a), r(b)));
}

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations. */
export function jacobiEigenvalues(m: Matrix): number[] {
  const n = m.length;
  const a = m.map((row) => [...row]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) off += get(a, i, j) ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = get(a, p, q);
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (get(a, q, q) - get(a, p, p)) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = get(a, k, p);
          const akq = get(a, k, q);
          (a[k] as number[])[p] = c * akp - s * akq;
          (a[k] as number[])[q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = get(a, p, k);
          const aqk = get(a, q, k);
          (a[p] as number[])[k] = c * apk - s * aqk;
          (a[q] as number[])[k] = s * apk + c * aqk;
        }
      }
    }
  }
  return a.map((row, i) => row[i] as number);
}

export function renyiEntropyOfKernel(k: Matrix, alpha: number): number {
  const t = trace(k);
  const lambdas = jacobiEigenvalues(k.map((row) => row.map((v) => v / t)));
  const sum = lambdas.reduce((s, l) => s + Math.max(l, 0) ** alpha, 0);
  return Math.log2(sum) / (1 - alpha);
}

export function renyiRef(a: Matrix, b: Matrix, opts: RefOptions): number {
  const ka = kernel(a, opts);
  const kb = kernel(b, opts);
  const joint = ka.map((row, i) => row.map((v, j) => v * get(kb, i, j)));
  return (
    renyiEntropyOfKernel(ka, opts.alpha) +
    renyiEntropyOfKernel(kb, opts.alpha) -
    renyiEntropyOfKernel(joint, opts.alpha)
  );
}

export const REFERENCES = { hsic: hsicRef, nhsic: nhsicRef, renyi: renyiRef } as const;

/** Central finite differences of f with respect to every entry of x, in float64. */
export function finiteDifferenceGradient(f: (x: Matrix) => number, x: Matrix, step: number): Matrix {
  return x.map((row, i) =>
    row.map((_, j) => {
      const plus = x.map((r) => [...r]);
      const minus = x.map((r) => [...r]);
      (plus[i] as number[])[j] = get(x, i, j) + step;
      (minus[i] as number[])[j] = get(x, i, j) - step;
      return (f(plus) - f(minus)) / (2 * step);
    }),
  );
}
