import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/**
 * Symmetric eigendecomposition on the device by parallel cyclic Jacobi, in one dispatch of one
 * workgroup: the whole matrix lives in global memory (the output buffer), the workgroup's threads
 * share each round's rotations and synchronise with barriers, and the sweeps stop on the device when
 * one applied no rotation (or after JACOBI_MAX_SWEEPS). Nothing is read back.
 *
 * The matrix is A = (X + X^T) / 2 + shift 1 1^T. The rank-one part is placed exactly: with the
 * Householder reflection Q (Q 1 = sqrt(n) e_1), the working matrix starts as Q A Q = Q X Q +
 * shift n e_1 e_1^T and the eigenvectors accumulate from Q. For a Gaussian kernel stored as K - 1
 * (mi/linalg-ops.ts), forming 1 + (K - 1) in float32 would round away the digits that carry the small
 * eigenvalues; Q (K - 1) Q keeps them, and Jacobi with the relative rotation test below keeps small
 * eigenvalues to the relative accuracy of their own size.
 *
 * Each sweep runs m - 1 rounds of the round-robin (circle) ordering, m = n rounded up to even: round r
 * pairs (r, m - 1) and ((r + k) mod (m - 1), (r - k) mod (m - 1)) for k = 1 .. m/2 - 1, so the m/2
 * pairs of a round are disjoint and every pair meets once per sweep. A round is three phases:
 * thread k computes pair k's rotation (Golub and Van Loan's symSchur2), the rows p, q of A and of V^T
 * are rotated, then the columns p, q of A, with the rotated pair's 2 x 2 block written from its
 * closed form (a_pq = 0 exactly).
 *
 * The output is packed, [2n + 2, n]: rows 0 .. n-1 V^T (row i is the unit eigenvector of eigenvalue i),
 * row n the eigenvalues (unsorted), rows n+1 .. 2n the working matrix, row 2n+1 the sweep count in its
 * first entry (JACOBI_MAX_SWEEPS + 1 when the last sweep still rotated).
 */

export const JACOBI_THREADS = 256;
/** The largest n: one thread per pair of a round. */
export const JACOBI_MAX_N = 2 * JACOBI_THREADS;
/** Float32 Jacobi converges quadratically: 6 to 10 sweeps at n <= 512 in practice. */
export const JACOBI_MAX_SWEEPS = 30;

export function jacobiEigenProgram(n: number, vectors: boolean): WebGPUProgram {
  if (!Number.isInteger(n) || n < 1 || n > JACOBI_MAX_N) {
    throw new Error(`symmetric eigendecomposition on webgpu: n must be 1 .. ${JACOBI_MAX_N}, got ${n}`);
  }
  const T = JACOBI_THREADS;
  // The V^T updates are left out when only the eigenvalues are wanted (V^T then holds Q).
  const rotateV = vectors
    ? `
            let vp = result[p * n + j];
            let vq = result[q * n + j];
            result[p * n + j] = vp - s * (vq + tau * vp);
            result[q * n + j] = vq + s * (vp - tau * vq);`
    : '';
  return {
    variableNames: ['X'],
    outputShape: [2 * n + 2, n],
    uniforms: 'n : i32, shift : f32,',
    workgroupSize: [T, 1, 1],
    // Not flat (y given): main() takes no index; a single workgroup.
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [1, 1, 1],
    shaderKey: `mimirJacobiEigen_${vectors ? 'vectors' : 'values'}`,
    getUserCode: () => `
      var<workgroup> rotS : array<f32, ${T}>;
      var<workgroup> rotTau : array<f32, ${T}>;
      var<workgroup> newP : array<f32, ${T}>;
      var<workgroup> newQ : array<f32, ${T}>;
      var<workgroup> partial : array<f32, ${T}>;
      var<workgroup> rotated : u32; // 1 + the index of the last sweep that rotated

      // Working matrix entry (i, j), after V^T (n rows) and the eigenvalue row.
      fn aAt(i : i32, j : i32) -> i32 { return (uniforms.n + 1 + i) * uniforms.n + j; }

      // Pair k of round r (circle method over m = even n); q is the padding index m - 1 when n is odd.
      fn pairOf(r : i32, k : i32, m : i32) -> vec2<i32> {
        if (k == 0) { return vec2<i32>(r, m - 1); }
        return vec2<i32>((r + k) % (m - 1), (r - k + m - 1) % (m - 1));
      }

      // Sum of v over the workgroup; every thread gets it. Called in uniform control flow.
      fn workgroupSum(v : f32) -> f32 {
        let li = i32(localIndex);
        partial[li] = v;
        workgroupBarrier();
        for (var s = ${T / 2}; s > 0; s = s >> 1u) {
          if (li < s) { partial[li] = partial[li] + partial[li + s]; }
          workgroupBarrier();
        }
        return workgroupUniformLoad(&partial[0]);
      }

      fn main() {
        let li = i32(localIndex);
        let n = uniforms.n;
        let m = n + (n & 1);
        let half = m / 2;
        let nn = n * n;

        // A = (X + X^T) / 2, V^T = I.
        var sq = 0.0;
        for (var e = li; e < nn; e = e + ${T}) {
          let i = e / n;
          let j = e % n;
          let a = 0.5 * (X[i * n + j] + X[j * n + i]);
          result[aAt(i, j)] = a;
          result[e] = select(0.0, 1.0, i == j);
        }
        storageBarrier();

        // A <- Q A Q + shift n e_1 e_1^T, V^T <- Q, with Q = I - beta w w^T, w = 1/sqrt(n) - e_1,
        // beta = 1 / (1 - 1/sqrt(n)): Q A Q = A - beta (w y^T + y w^T) + beta^2 (w.y) w w^T, y = A w.
        if (uniforms.shift != 0.0 && n > 1) {
          let r = inverseSqrt(f32(n));
          let beta = 1.0 / (1.0 - r);
          for (var i = li; i < n; i = i + ${T}) {
            var y = -result[aAt(i, 0)];
            for (var j = 0; j < n; j = j + 1) { y = fma(result[aAt(i, j)], r, y); }
            result[nn + i] = y;
          }
          storageBarrier();
          var g = 0.0;
          for (var i = li; i < n; i = i + ${T}) { g = fma(select(r, r - 1.0, i == 0), result[nn + i], g); }
          let gamma = workgroupSum(g);
          for (var e = li; e < nn; e = e + ${T}) {
            let i = e / n;
            let j = e % n;
            let wi = select(r, r - 1.0, i == 0);
            let wj = select(r, r - 1.0, j == 0);
            var a = result[aAt(i, j)] - beta * (wi * result[nn + j] + result[nn + i] * wj) + beta * beta * gamma * wi * wj;
            if (e == 0) { a = a + uniforms.shift * f32(n); }
            result[aAt(i, j)] = a;
            result[e] = select(0.0, 1.0, i == j) - beta * wi * wj;
          }
        } else if (n == 1) {
          if (li == 0) { result[aAt(0, 0)] = result[aAt(0, 0)] + uniforms.shift; }
        }
        storageBarrier();
        for (var e = li; e < nn; e = e + ${T}) { let a = result[aAt(e / n, e % n)]; sq = fma(a, a, sq); }
        // Below this, an off-diagonal entry is rounding noise of the whole matrix (underflow guard).
        let tiny = sqrt(workgroupSum(sq)) * 1e-12;

        var sweeps = ${JACOBI_MAX_SWEEPS + 1};
        for (var sweep = 0; sweep < ${JACOBI_MAX_SWEEPS}; sweep = sweep + 1) {
          for (var rnd = 0; rnd < m - 1; rnd = rnd + 1) {
            if (li < half) {
              let pq = pairOf(rnd, li, m);
              let p = pq.x;
              let q = pq.y;
              var s = 0.0;
              var tau = 0.0;
              if (q < n) {
                let apq = result[aAt(p, q)];
                let app = result[aAt(p, p)];
                let aqq = result[aAt(q, q)];
                // Rotate unless a_pq is below float32 rounding relative to its diagonal (relative accuracy).
                if (abs(apq) > max(5.96e-8 * sqrt(abs(app * aqq)), tiny)) {
                  let theta = (aqq - app) / (2.0 * apq);
                  let sgn = select(-1.0, 1.0, theta >= 0.0);
                  var t = sgn / (abs(theta) + sqrt(fma(theta, theta, 1.0)));
                  if (abs(theta) > 1e18) { t = 0.5 / theta; }
                  let c = inverseSqrt(fma(t, t, 1.0));
                  s = t * c;
                  tau = s / (1.0 + c);
                  newP[li] = app - t * apq;
                  newQ[li] = aqq + t * apq;
                  rotated = u32(sweep + 1);
                }
              }
              rotS[li] = s;
              rotTau[li] = tau;
            }
            workgroupBarrier();
            // Rows p and q of A and of V^T (J^T A, J^T V^T), one (pair, column) per item.
            for (var e = li; e < half * n; e = e + ${T}) {
              let k = e / n;
              let s = rotS[k];
              if (s != 0.0) {
                let tau = rotTau[k];
                let pq = pairOf(rnd, k, m);
                let p = pq.x;
                let q = pq.y;
                let j = e % n;
                let ap = result[aAt(p, j)];
                let aq = result[aAt(q, j)];
                result[aAt(p, j)] = ap - s * (aq + tau * ap);
                result[aAt(q, j)] = aq + s * (ap - tau * aq);${rotateV}
              }
            }
            storageBarrier();
            // Columns p and q of A (A J), one (pair, row) per item; the pair's own 2 x 2 block in closed form.
            for (var e = li; e < half * n; e = e + ${T}) {
              let k = e / n;
              let s = rotS[k];
              if (s != 0.0) {
                let pq = pairOf(rnd, k, m);
                let p = pq.x;
                let q = pq.y;
                let i = e % n;
                if (i == p) {
                  result[aAt(p, p)] = newP[k];
                  result[aAt(p, q)] = 0.0;
                } else if (i == q) {
                  result[aAt(q, q)] = newQ[k];
                  result[aAt(q, p)] = 0.0;
                } else {
                  let tau = rotTau[k];
                  let ap = result[aAt(i, p)];
                  let aq = result[aAt(i, q)];
                  result[aAt(i, p)] = ap - s * (aq + tau * ap);
                  result[aAt(i, q)] = aq + s * (ap - tau * aq);
                }
              }
            }
            storageBarrier();
          }
          // A sweep that rotated nothing marks the end (no reset of the flag: it holds the last sweep that rotated).
          if (workgroupUniformLoad(&rotated) != u32(sweep + 1)) {
            sweeps = sweep + 1;
            break;
          }
        }
        for (var i = li; i < n; i = i + ${T}) { result[nn + i] = result[aAt(i, i)]; }
        if (li == 0) { result[(2 * n + 1) * n] = f32(sweeps); }
      }`,
  };
}
