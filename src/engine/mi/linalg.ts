/**
 * Dense float64 linear algebra in plain JavaScript for the MI estimators: TensorFlow.js has no
 * inverse, solve or eigendecomposition op. Matrices are square, n x n, in flat Float64Arrays.
 * Both routines are O(n^3) with small constants and walk memory contiguously in their inner loops.
 */

/**
 * Invert a general square matrix in place (Gauss-Jordan elimination with partial pivoting, row
 * major). About n^3 multiply-adds. Throws if a pivot vanishes.
 */
export function invertInPlace(a: Float64Array, n: number): void {
  if (a.length !== n * n) throw new Error(`invertInPlace: expected ${n * n} entries, got ${a.length}.`);
  const swaps = new Int32Array(n);
  let scale = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i] as number));
  const tiny = scale * n * Number.EPSILON;

  for (let k = 0; k < n; k++) {
    let pivotRow = k;
    let best = Math.abs(a[k * n + k] as number);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(a[i * n + k] as number);
      if (v > best) {
        best = v;
        pivotRow = i;
      }
    }
    if (!(best > tiny)) throw new Error('invertInPlace: the matrix is singular to working precision.');
    swaps[k] = pivotRow;
    if (pivotRow !== k) {
      const rk = k * n;
      const rp = pivotRow * n;
      for (let j = 0; j < n; j++) {
        const t = a[rk + j] as number;
        a[rk + j] = a[rp + j] as number;
        a[rp + j] = t;
      }
    }
    const rk = k * n;
    const inv = 1 / (a[rk + k] as number);
    a[rk + k] = 1;
    for (let j = 0; j < n; j++) a[rk + j] = (a[rk + j] as number) * inv;
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const ri = i * n;
      const f = a[ri + k] as number;
      if (f === 0) continue;
      a[ri + k] = 0;
      for (let j = 0; j < n; j++) a[ri + j] = (a[ri + j] as number) - f * (a[rk + j] as number);
    }
  }
  // Row swaps of the input become column swaps of the inverse, undone in reverse order.
  for (let k = n - 1; k >= 0; k--) {
    const p = swaps[k] as number;
    if (p === k) continue;
    for (let i = 0; i < n; i++) {
      const ri = i * n;
      const t = a[ri + k] as number;
      a[ri + k] = a[ri + p] as number;
      a[ri + p] = t;
    }
  }
}

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /**
   * Eigenvectors, one per row, in the order of `values` (row i is the unit eigenvector of
   * values[i]); null when only the values were asked for.
   */
  vectors: Float64Array | null;
}

/**
 * Eigen-decomposition of a real symmetric matrix: Householder reduction to tridiagonal form, then
 * the implicit QL algorithm with Wilkinson-style shifts (the EISPACK tred2/tql2 pair). Only the
 * lower triangle of `a` is read. With `withVectors` false the O(n^3) accumulation of the
 * transformations is skipped (the reduction itself stays O(n^3), the QL part becomes O(n^2)).
 *
 * The working matrix is kept column-major (a symmetric input reads the same either way), so every
 * inner loop runs along a column, which is contiguous; the eigenvectors end up as its columns,
 * i.e. as rows of the flat array.
 */
export function symmetricEigen(a: Float64Array, n: number, withVectors: boolean): SymmetricEigen {
  if (a.length !== n * n) throw new Error(`symmetricEigen: expected ${n * n} entries, got ${a.length}.`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i] as number)) throw new Error('symmetricEigen: the matrix has a non-finite entry.');
  }
  // v[col * n + row]; initialised with the lower triangle, mirrored.
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const x = a[i * n + j] as number;
      v[j * n + i] = x;
      v[i * n + j] = x;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  householderTridiagonal(v, d, e, n, withVectors);
  tridiagonalQl(v, d, e, n, withVectors);

  // Sort ascending (QL leaves them almost sorted), permuting the vectors along.
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => (d[i] as number) - (d[j] as number));
  const values = new Float64Array(n);
  order.forEach((from, to) => (values[to] = d[from] as number));
  if (!withVectors) return { values, vectors: null };
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => vectors.set(v.subarray(from * n, from * n + n), to * n));
  return { values, vectors };
}

/** Element (row, col) of the column-major working matrix. */
const at = (n: number, row: number, col: number): number => col * n + row;

function householderTridiagonal(
  v: Float64Array,
  d: Float64Array,
  e: Float64Array,
  n: number,
  withVectors: boolean,
): void {
  for (let j = 0; j < n; j++) d[j] = v[at(n, n - 1, j)] as number;

  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k] as number);
    if (scale === 0) {
      e[i] = d[i - 1] as number;
      for (let j = 0; j < i; j++) {
        d[j] = v[at(n, i - 1, j)] as number;
        v[at(n, i, j)] = 0;
        v[at(n, j, i)] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        const dk = (d[k] as number) / scale;
        d[k] = dk;
        h += dk * dk;
      }
      let f = d[i - 1] as number;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;

      for (let j = 0; j < i; j++) {
        f = d[j] as number;
        v[at(n, j, i)] = f;
        const cj = j * n;
        g = (e[j] as number) + (v[cj + j] as number) * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const vkj = v[cj + k] as number;
          g += vkj * (d[k] as number);
          e[k] = (e[k] as number) + vkj * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        const ej = (e[j] as number) / h;
        e[j] = ej;
        f += ej * (d[j] as number);
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = (e[j] as number) - hh * (d[j] as number);
      for (let j = 0; j < i; j++) {
        f = d[j] as number;
        g = e[j] as number;
        const cj = j * n;
        for (let k = j; k <= i - 1; k++)
          v[cj + k] = (v[cj + k] as number) - (f * (e[k] as number) + g * (d[k] as number));
        d[j] = v[at(n, i - 1, j)] as number;
        v[at(n, i, j)] = 0;
      }
    }
    d[i] = h;
  }

  if (!withVectors) {
    // The diagonal of the tridiagonal matrix sits on the working matrix's diagonal.
    for (let j = 0; j < n; j++) d[j] = v[at(n, j, j)] as number;
    e[0] = 0;
    return;
  }

  // Accumulate the Householder transformations into v.
  for (let i = 0; i < n - 1; i++) {
    v[at(n, n - 1, i)] = v[at(n, i, i)] as number;
    v[at(n, i, i)] = 1;
    const h = d[i + 1] as number;
    const ci1 = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = (v[ci1 + k] as number) / h;
      for (let j = 0; j <= i; j++) {
        const cj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += (v[ci1 + k] as number) * (v[cj + k] as number);
        for (let k = 0; k <= i; k++) v[cj + k] = (v[cj + k] as number) - g * (d[k] as number);
      }
    }
    for (let k = 0; k <= i; k++) v[ci1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[at(n, n - 1, j)] as number;
    v[at(n, n - 1, j)] = 0;
  }
  v[at(n, n - 1, n - 1)] = 1;
  e[0] = 0;
}

const MAX_QL_ITERATIONS = 60;

function tridiagonalQl(v: Float64Array, d: Float64Array, e: Float64Array, n: number, withVectors: boolean): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i] as number;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = Number.EPSILON;

  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l] as number) + Math.abs(e[l] as number));
    let m = l;
    while (m < n - 1 && Math.abs(e[m] as number) > eps * tst1) m++;

    if (m > l) {
      let iter = 0;
      do {
        if (++iter > MAX_QL_ITERATIONS) throw new Error('symmetricEigen: the QL iteration did not converge.');
        let g = d[l] as number;
        let p = ((d[l + 1] as number) - g) / (2 * (e[l] as number));
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = (e[l] as number) / (p + r);
        d[l + 1] = (e[l] as number) * (p + r);
        const dl1 = d[l + 1] as number;
        let h = g - (d[l] as number);
        for (let i = l + 2; i < n; i++) d[i] = (d[i] as number) - h;
        f += h;

        p = d[m] as number;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1] as number;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          const ei = e[i] as number;
          const di = d[i] as number;
          g = c * ei;
          h = c * p;
          r = Math.hypot(p, ei);
          e[i + 1] = s * r;
          s = ei / r;
          c = p / r;
          p = c * di - s * g;
          d[i + 1] = h + s * (c * g + s * di);
          if (withVectors) {
            const ci = i * n;
            const ci1 = (i + 1) * n;
            for (let k = 0; k < n; k++) {
              const x1 = v[ci1 + k] as number;
              const x0 = v[ci + k] as number;
              v[ci1 + k] = s * x0 + c * x1;
              v[ci + k] = c * x0 - s * x1;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * (e[l] as number)) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l] as number) > eps * tst1);
    }
    d[l] = (d[l] as number) + f;
    e[l] = 0;
  }
}
