/**
 * Differentiable tensor ops built on the float64 JavaScript linear algebra of ./linalg: the
 * forward pass reads the matrix, works in float64 and returns float32; the backward pass is written
 * by hand (tf.customGrad) and runs as TensorFlow.js matMuls. Each reads its input synchronously, so
 * it serves the cpu, wasm and tensorflow backends. The webgpu backend cannot read synchronously under
 * Node (dataSync fails): there regularisedProjection inverts on the device, in float32 tensor ops, and
 * the Renyi entropy decomposes on the device (the engine's Jacobi kernel, webgpu/eigen-program.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { symmetricEigenKernel } from '../kernels';
import { JACOBI_MAX_N } from '../webgpu/eigen-program';
import { invertInPlace, symmetricEigen, type SymmetricEigen } from './linalg';

function squareMatrix(inputs: Array<tf.Tensor | tf.GradSaveFunc>, what: string): tf.Tensor2D {
  const x = inputs[0];
  if (!(x instanceof tf.Tensor) || x.rank !== 2 || x.shape[0] !== x.shape[1]) {
    throw new Error(`${what}: expected one square matrix.`);
  }
  return x as tf.Tensor2D;
}

/**
 * x's values, read synchronously for float64 work on the CPU. The webgpu backend cannot read
 * synchronously under Node: there this is an error that says what to use instead.
 */
export function readForCpu(x: tf.Tensor, what: string): Float32Array | Int32Array | Uint8Array {
  if (tf.getBackend() === 'webgpu') {
    // Every caller has a webgpu path that stays on the device: reaching this is a bug of the engine.
    throw new Error(
      `${what} works in float64 on the CPU and reads its input synchronously, which the webgpu backend cannot do under Node; ` +
        'its webgpu path should have been taken. Please report this; meanwhile run on another backend (--backend wasm).',
    );
  }
  return x.dataSync();
}

function readFinite(x: tf.Tensor, what: string): Float32Array | Int32Array | Uint8Array {
  const data = readForCpu(x, what);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i] as number))
      throw new Error(`${what}: the input is not finite (NaN or infinity in the features?).`);
  }
  return data;
}

/**
 * R = K (K + c I)^-1 for a square K (not necessarily symmetric) and a ridge c > 0; nHSIC's
 * "normalised" kernel. Forward: R = I - c M^-1 with M = K + c I, inverted in float64.
 * Backward, from d(M^-1) = -M^-1 dM M^-1: dR = c M^-1 dK M^-1, so dL/dK = c M^-T G M^-T.
 */
export function regularisedProjection(k: tf.Tensor2D, c: number): tf.Tensor2D {
  if (!(c > 0)) throw new Error(`regularisedProjection: the ridge must be positive, got ${c}.`);
  const op = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = squareMatrix(inputs, 'regularisedProjection');
    const save = inputs[1];
    if (tf.getBackend() === 'webgpu' && typeof save === 'function') return projectionOnDevice(x, c, save);
    const n = x.shape[0];
    const m = Float64Array.from(readFinite(x, 'regularisedProjection'));
    for (let i = 0; i < n; i++) m[i * n + i] = (m[i * n + i] as number) + c;
    invertInPlace(m, n);
    const r = new Float32Array(n * n);
    const root = Math.sqrt(c);
    // The backward pass is Q G Q with Q = (sqrt(c) M^-1)^T, kept transposed here: matMul with a
    // transposed operand is slow on wasm.
    const q = new Float32Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const inv = m[i * n + j] as number;
        r[i * n + j] = (i === j ? 1 : 0) - c * inv;
        q[j * n + i] = root * inv;
      }
    }
    return {
      value: tf.tensor2d(r, [n, n]),
      gradFunc: (dy: tf.Tensor) => {
        const qt = tf.tensor2d(q, [n, n]);
        return tf.matMul(tf.matMul(qt, dy), qt);
      },
    };
  });
  return op(k) as tf.Tensor2D;
}

/**
 * regularisedProjection's forward and backward in tensor ops, with no read back: for the webgpu
 * backend. M = K + c I is inverted in float32 by Gauss-Jordan elimination without pivoting, which is
 * stable for nHSIC's symmetric positive-definite M (H K H is positive semi-definite, c > 0). A
 * non-finite input is not detected here (no read): it makes the value NaN, which the step's loss shows.
 * The forward runs inside the engine's tidy; only the value and the saved Q survive it.
 */
function projectionOnDevice(
  k: tf.Tensor2D,
  c: number,
  save: tf.GradSaveFunc,
): { value: tf.Tensor2D; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor } {
  const n = k.shape[0];
  const inverse = invertOnDevice(tf.add(k, tf.mul(tf.eye(n), c)));
  save([tf.mul(tf.transpose(inverse), Math.sqrt(c))]);
  return {
    value: tf.sub(tf.eye(n), tf.mul(inverse, c)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [qt] = saved;
      if (!qt) throw new Error('regularisedProjection: the inverse was not saved for the gradient.');
      return tf.matMul(tf.matMul(qt, dy), qt);
    },
  };
}

/**
 * M^-1 by Gauss-Jordan elimination on [M | I], one pivot per step, all on the device. Step k divides
 * row k by its pivot p = row_k / M_kk and subtracts (column_k - e_k) p^T from the whole: every other row
 * loses its multiple of p, and row k becomes p.
 */
function invertOnDevice(m: tf.Tensor2D): tf.Tensor2D {
  const n = m.shape[0];
  let augmented = tf.concat([m, tf.eye(n)], 1);
  for (let k = 0; k < n; k++) {
    const previous = augmented;
    augmented = tf.tidy(() => {
      const row = tf.slice(previous, [k, 0], [1, 2 * n]);
      const pivotRow = tf.div(row, tf.slice(previous, [k, k], [1, 1]));
      const unit = tf.tensor2d(
        Float32Array.from({ length: n }, (_, i) => (i === k ? 1 : 0)),
        [n, 1],
      );
      const column = tf.sub(tf.slice(previous, [0, k], [n, 1]), unit);
      return tf.sub(previous, tf.mul(column, pivotRow));
    });
    previous.dispose();
  }
  const inverse = tf.slice(augmented, [0, n], [n, n]);
  augmented.dispose();
  return inverse;
}

/** Base-2 log of e, for the log2 of Eq. 25. */
const LOG2E = Math.LOG2E;
/** Eigenvalues below this fraction of the largest are float32 rounding noise of the kernel. */
const NOISE_FLOOR = 2 ** -24;

/**
 * Matrix-based Renyi alpha-entropy (paper Eq. 25) of the positive semi-definite matrix
 * K = shifted + 1 1^T, normalised by its trace: H = log2(sum_i lambda_i^alpha) / (1 - alpha).
 * Taking K - 1 instead of K lets the caller hand over the Gaussian kernel as expm1 of its exponent,
 * which keeps float32 digits when every entry is close to 1 (the spec's kernel scaling); the shift
 * is added back in float64. The input is symmetrised, (K + K^T) / 2.
 *
 * Orders alpha > 1 only. Rounding can make eigenvalues slightly negative; they count as 0
 * in the value (lambda^alpha is continuous there). In the gradient, alpha lambda^(alpha-1) is
 * evaluated at max(lambda, 2^-24 lambda_max), so the whole numerically-null subspace, whose
 * eigenvalues are rounding noise of either sign, gets one consistent weight.
 *
 * Gradient: with S = tr(Kn^alpha), Kn = K / t, t = tr K, dS/dKn = alpha V diag(lambda^(alpha-1)) V^T
 * and dS/dK = (dS/dKn - alpha S I) / t, so dH/dK = V diag(u) V^T with
 * u_i = (alpha lambda_i^(alpha-1) - alpha S) / ((1 - alpha) S t ln 2).
 */
export function renyiEntropyOfShiftedKernel(shifted: tf.Tensor2D, alpha: number): tf.Scalar {
  if (!(alpha > 1)) throw new Error(`renyiEntropy: alpha must be above 1, got ${alpha}.`);
  // Eigenvectors cost most of the time; they are only needed when a gradient will be taken.
  const wantVectors = tf.engine().isTapeOn();
  const op = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = squareMatrix(inputs, 'renyiEntropy');
    const save = inputs[1];
    if (tf.getBackend() === 'webgpu' && typeof save === 'function') return renyiOnDevice(x, alpha, wantVectors, save);
    const n = x.shape[0];
    const data = readFinite(x, 'renyiEntropy');
    const k = new Float64Array(n * n);
    let trace = 0;
    for (let i = 0; i < n; i++) {
      trace += 1 + (data[i * n + i] as number);
      for (let j = 0; j <= i; j++) {
        const kij = 1 + 0.5 * ((data[i * n + j] as number) + (data[j * n + i] as number));
        k[i * n + j] = kij;
        k[j * n + i] = kij;
      }
    }
    if (!(trace > 0)) throw new Error('renyiEntropy: the kernel matrix has a non-positive trace.');
    for (let i = 0; i < k.length; i++) k[i] = (k[i] as number) / trace;

    let eigen: SymmetricEigen = symmetricEigen(k, n, wantVectors);
    const lambdas = eigen.values;
    let sum = 0;
    for (const lambda of lambdas) if (lambda > 0) sum += lambda ** alpha;
    const entropy = (Math.log(sum) * LOG2E) / (1 - alpha);

    return {
      value: tf.scalar(entropy),
      gradFunc: (dy: tf.Tensor) => {
        if (!eigen.vectors) eigen = symmetricEigen(k, n, true);
        const vectors = eigen.vectors;
        if (!vectors) throw new Error('renyiEntropy: no eigenvectors.');
        const floor = NOISE_FLOOR * Math.max(lambdas[n - 1] as number, 0);
        const denominator = (1 - alpha) * sum * trace * Math.LN2;
        const u = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const lambda = Math.max(lambdas[i] as number, floor);
          u[i] = (alpha * lambda ** (alpha - 1) - alpha * sum) / denominator;
        }
        // dH/dK = V diag(u) V^T with the eigenvectors as columns of V; both layouts are uploaded
        // because matMul with a transposed operand is slow on wasm.
        const columns = new Float32Array(n * n);
        for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) columns[k * n + i] = vectors[i * n + k] as number;
        const scaledColumns = tf.mul(tf.tensor2d(columns, [n, n]), tf.mul(tf.tensor2d(u, [1, n]), dy));
        return tf.matMul(scaledColumns, tf.tensor2d(Float32Array.from(vectors), [n, n]));
      },
    };
  });
  return op(shifted) as tf.Scalar;
}

/**
 * renyiEntropyOfShiftedKernel's value and gradient with no read back, for the webgpu backend: K =
 * 1 1^T + (X + X^T) / 2 decomposed by the engine's Jacobi kernel (float32, the shift placed exactly),
 * then the same formulas in tensor ops. t = tr K is taken as the sum of K's eigenvalues (the same
 * number), so that the normalised eigenvalues sum to 1 and
 * S = sum_i max(lambda_i, 0)^alpha = 1 + sum_i (max(lambda_i, 0)^alpha - lambda_i), whose terms are
 * lambda expm1((alpha - 1) ln lambda) (or -lambda where lambda <= 0): S - 1 and the gradient's
 * lambda^(alpha-1) - S keep their digits in float32 where alpha is close to 1 (the spec's 1.01). As in
 * projectionOnDevice, a non-finite input is not detected (no read): the value becomes NaN.
 */
function renyiOnDevice(
  x: tf.Tensor2D,
  alpha: number,
  wantVectors: boolean,
  save: tf.GradSaveFunc,
): { value: tf.Scalar; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor } {
  const n = x.shape[0];
  if (n > JACOBI_MAX_N) {
    throw new Error(
      `renyiEntropy: on webgpu the Renyi estimator takes batches of up to ${JACOBI_MAX_N} samples, got ${n}: ` +
        "use a smaller batch, the MI estimator 'nhsic' or 'hsic', or another backend (--backend wasm).",
    );
  }
  const [rawValues, vectors] = symmetricEigenKernel(x, 1, wantVectors);
  const trace = tf.sum(rawValues);
  const lambdas = tf.div(tf.reshape(rawValues, [n]), trace);
  const positive = tf.greater(lambdas, 0);
  // lambda^(alpha-1) - 1, at a floor for lambda <= 0 (only used where lambda > 0 or in the gradient).
  const powerMinusOne = (l: tf.Tensor): tf.Tensor => tf.expm1(tf.mul(tf.log(l), alpha - 1));
  const terms = tf.where(positive, tf.mul(lambdas, powerMinusOne(tf.maximum(lambdas, 1e-37))), tf.neg(lambdas));
  const sumMinusOne = tf.sum(terms);
  const value = tf.mul(tf.log1p(sumMinusOne), LOG2E / (1 - alpha)) as tf.Scalar;
  // u_i = alpha (lambda_i^(alpha-1) - S) / ((1 - alpha) S t ln 2), lambda_i at the noise floor.
  const floor = tf.mul(tf.relu(tf.max(lambdas)), NOISE_FLOOR);
  const weights = tf.div(
    tf.mul(tf.sub(powerMinusOne(tf.maximum(lambdas, floor)), sumMinusOne), alpha),
    tf.mul(tf.mul(tf.add(sumMinusOne, 1), trace), (1 - alpha) * Math.LN2),
  );
  save([vectors, tf.reshape(weights, [n, 1])]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [rows, u] = saved;
      if (!rows || !u || !wantVectors) throw new Error('renyiEntropy: no eigenvectors were saved for the gradient.');
      // dH/dK = V diag(u) V^T with the eigenvectors as rows of `rows`.
      return tf.matMul(rows, tf.mul(rows, tf.mul(u, dy)), true, false);
    },
  };
}
