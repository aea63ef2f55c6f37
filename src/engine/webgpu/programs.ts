import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/**
 * The engine's WGSL kernels as tfjs-backend-webgpu programs. tfjs writes each shader's preamble:
 * the output binding `result`, one read-only binding per name in variableNames, and the `uniforms`
 * struct (the inputs' shapes, then the fields in `uniforms`). Programs that use workgroup memory
 * take their workgroup index from workgroupId (tfjs may fold a long x dispatch into y and z).
 */

/** The workgroup's index in a dispatch that tfjs may have folded into y and z. */
const FLAT_WORKGROUP = `i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x)`;

/** Output tile of a GEMM workgroup (GEMM_TILE x GEMM_TILE), depth of a K step, threads 16 x 16. */
export const GEMM_TILE = 64;
export const GEMM_DEPTH = 16;

/**
 * WGSL that stages one operand's 64 x 16 tile of op(X) for the K step at k0 into `tile` (tile[kk * 64 + i]),
 * each thread reading along X's contiguous axis: 4 scalars, or one vec4 where `vec` (X bound as vec4:
 * its row length a multiple of 4, so a vec4 never crosses a row or the bounds).
 */
function tileLoad(x: 'A' | 'B', depthContiguous: boolean, vec: boolean, f16: boolean): string {
  const stage = (v: string) => (f16 ? `f16(${v})` : v);
  const T = GEMM_TILE;
  const D = GEMM_DEPTH;
  const [tile, outer0, outerLimit, ld] =
    x === 'A'
      ? ['tileA', 'row0', 'uniforms.M', 'uniforms.aShape.y']
      : ['tileB', 'col0', 'uniforms.N', 'uniforms.bShape.y'];
  const at = (outer: string, depth: string) =>
    depthContiguous ? `${outer} * ${ld} + ${depth}` : `${depth} * ${ld} + ${outer}`;
  if (!vec) {
    const index = depthContiguous ? `let kk = e % ${D}; let i = e / ${D};` : `let i = e % ${T}; let kk = e / ${T};`;
    return `
          for (var l = 0; l < ${(D * T) / 256}; l = l + 1) {
            let e = li + l * 256;
            ${index}
            let o = ${outer0} + i;
            let d = k0 + kk;
            var v = 0.0;
            if (o < ${outerLimit} && d < uniforms.K) { v = ${x}[${at('o', 'd')}]; }
            ${tile}[kk * ${T} + i] = ${stage('v')};
          }`;
  }
  // One vec4 per thread: 4 depths of one outer index, or 4 outer indices at one depth.
  const index = depthContiguous
    ? `let i = li / 4; let kk = (li % 4) * 4;`
    : `let i = (li % ${T / 4}) * 4; let kk = li / ${T / 4};`;
  const store = depthContiguous
    ? `for (var c = 0; c < 4; c = c + 1) { ${tile}[(kk + c) * ${T} + i] = ${stage('v[c]')}; }`
    : `for (var c = 0; c < 4; c = c + 1) { ${tile}[kk * ${T} + i + c] = ${stage('v[c]')}; }`;
  return `
          {
            ${index}
            let o = ${outer0} + i;
            let d = k0 + kk;
            var v = vec4<f32>(0.0);
            if (o < ${outerLimit} && d < uniforms.K) { v = ${x}[(${at('o', 'd')}) / 4]; }
            ${store}
          }`;
}

/**
 * C = op(A) op(B) (+ bias): 64 x 64 output tiles, 16 x 16 threads each computing 4 x 4 outputs;
 * op(A) and op(B) are staged 16 deep in workgroup memory (tileLoad), read as vec4 where `vecA` /
 * `vecB` (the operand's row length a multiple of 4). fp32 throughout, or with `f16` (shader-f16)
 * the tiles staged as f16: inputs rounded to f16, products and sums in f32, fp32 results.
 */
export function gemmProgram(
  m: number,
  n: number,
  options: { transA: boolean; transB: boolean; bias: boolean; vecA: boolean; vecB: boolean; f16: boolean },
): WebGPUProgram {
  const { transA, transB, bias, vecA, vecB, f16 } = options;
  const T = GEMM_TILE;
  const D = GEMM_DEPTH;
  const flags = `${transA ? 't' : 'n'}${transB ? 't' : 'n'}${vecA ? '4' : '1'}${vecB ? '4' : '1'}${f16 ? '_f16' : ''}`;
  const tileType = f16 ? 'f16' : 'f32';
  const read = (v: string) => (f16 ? `f32(${v})` : v);
  return {
    variableNames: bias ? ['A', 'B', 'bias'] : ['A', 'B'],
    variableComponents: bias ? [vecA ? 4 : 1, vecB ? 4 : 1, 1] : [vecA ? 4 : 1, vecB ? 4 : 1],
    outputShape: [m, n],
    uniforms: 'M : i32, N : i32, K : i32,',
    workgroupSize: [16, 16, 1],
    dispatchLayout: { x: [1], y: [0] },
    dispatch: [Math.ceil(n / T), Math.ceil(m / T), 1],
    shaderKey: `mimirGemm_${flags}${bias ? '_bias' : ''}`,
    getUserCode: () => `
      ${f16 ? 'enable f16;' : ''}
      var<workgroup> tileA : array<${tileType}, ${D * T}>;
      var<workgroup> tileB : array<${tileType}, ${D * T}>;
      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let li = i32(localIndex);
        let row0 = i32(workgroupId.y) * ${T};
        let col0 = i32(workgroupId.x) * ${T};
        var acc : array<array<f32, 4>, 4>;
        for (var k0 = 0; k0 < uniforms.K; k0 = k0 + ${D}) {
          ${tileLoad('A', !transA, vecA, f16)}
          ${tileLoad('B', transB, vecB, f16)}
          workgroupBarrier();
          for (var kk = 0; kk < ${D}; kk = kk + 1) {
            var a : array<f32, 4>;
            var b : array<f32, 4>;
            for (var r = 0; r < 4; r = r + 1) {
              a[r] = ${read(`tileA[kk * ${T} + ty + 16 * r]`)};
              b[r] = ${read(`tileB[kk * ${T} + tx + 16 * r]`)};
            }
            for (var r = 0; r < 4; r = r + 1) {
              for (var c = 0; c < 4; c = c + 1) { acc[r][c] = fma(a[r], b[c], acc[r][c]); }
            }
          }
          workgroupBarrier();
        }
        for (var r = 0; r < 4; r = r + 1) {
          let row = row0 + ty + 16 * r;
          for (var c = 0; c < 4; c = c + 1) {
            let col = col0 + tx + 16 * c;
            if (row < uniforms.M && col < uniforms.N) {
              result[row * uniforms.N + col] = acc[r][c]${bias ? ' + bias[col]' : ''};
            }
          }
        }
      }`,
  };
}

/** erf by Eigen's float rational approximation on [-4, 4] (as kernels.c), +-1 beyond. */
const ERF = `
  fn mimirErf(x0 : f32) -> f32 {
    let x = clamp(x0, -4.0, 4.0);
    let x2 = x * x;
    var p = fma(-2.72614225801306e-10, x2, 2.77068142495902e-08);
    p = fma(p, x2, -2.10102402082508e-06);
    p = fma(p, x2, -5.69250639462346e-05);
    p = fma(p, x2, -7.34990630326855e-04);
    p = fma(p, x2, -2.95459980854025e-03);
    p = fma(p, x2, -1.60960333262415e-02);
    p = p * x;
    var q = fma(-1.45660718464996e-05, x2, -2.13374055278905e-04);
    q = fma(q, x2, -1.68282697438203e-03);
    q = fma(q, x2, -7.37332916720468e-03);
    q = fma(q, x2, -1.42647390514189e-02);
    return p / q;
  }`;

/**
 * A float32 program over every element of X (one thread each), `value` its result from `x` = X[index];
 * `functions` are WGSL helpers it calls. tfjs folds a dispatch past the per-dimension limit and
 * unfolds the flat index.
 */
export function elementwiseProgram(
  shape: number[],
  shaderKey: string,
  functions: string,
  value: string,
): WebGPUProgram {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    variableNames: ['X'],
    outputShape: shape,
    size: true,
    workgroupSize: [256, 1, 1],
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / 256), 1, 1],
    shaderKey,
    getUserCode: () => `
      ${functions}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let x = X[index];
          result[index] = ${value};
        }
      }`,
  };
}

/** Exact GELU x Phi(x) (`slope`: false), or its slope Phi(x) + x phi(x) (true), element-wise. */
export function geluProgram(shape: number[], slope: boolean): WebGPUProgram {
  const cdf = 'fma(mimirErf(x * 0.70710678118654752), 0.5, 0.5)';
  const value = slope ? `${cdf} + x * exp(-0.5 * x * x) * 0.39894228040143268` : `x * ${cdf}`;
  return elementwiseProgram(shape, slope ? 'mimirGeluSlope' : 'mimirGelu', ERF, value);
}

const ROW_THREADS = 64;

/**
 * Sum over a row's 64 threads (every thread gets it); called in uniform control flow. With
 * `subgroups`: subgroupAdd within each subgroup, whose lowest thread leaves the sum in its own slot
 * (the others 0), then every thread adds the 64 slots in a fixed order. That holds for any subgroup
 * size and any layout of subgroups in the workgroup, and sums in the same order on every run.
 */
const ROW_SUM_SUBGROUPS = `
  enable subgroups;
  var<workgroup> rowPartial : array<vec4<f32>, ${ROW_THREADS / 4}>;
  fn rowSum(v : f32) -> f32 {
    let li = i32(localIndex);
    let s = subgroupAdd(v);
    rowPartial[li / 4][li % 4] = select(0.0, s, subgroupMin(li) == li);
    workgroupBarrier();
    var t = vec4<f32>(0.0);
    for (var j = 0; j < ${ROW_THREADS / 4}; j = j + 1) { t = t + rowPartial[j]; }
    workgroupBarrier();
    return (t.x + t.y) + (t.z + t.w);
  }`;

const ROW_SUM = `
  var<workgroup> rowPartial : array<f32, ${ROW_THREADS}>;
  fn rowSum(v : f32) -> f32 {
    let li = i32(localIndex);
    rowPartial[li] = v;
    workgroupBarrier();
    for (var s = ${ROW_THREADS / 2}; s > 0; s = s >> 1u) {
      if (li < s) { rowPartial[li] = rowPartial[li] + rowPartial[li + s]; }
      workgroupBarrier();
    }
    let total = rowPartial[0];
    workgroupBarrier();
    return total;
  }`;

/** -FLT_MAX: the identity of rowMax (WGSL constants cannot be infinite). */
const LOWEST = '-0x1.fffffep+127f';

/** Max over a row's 64 threads (every thread gets it), as ROW_SUM_SUBGROUPS; shares its workgroup memory. */
const ROW_MAX_SUBGROUPS = `
  fn rowMax(v : f32) -> f32 {
    let li = i32(localIndex);
    let s = subgroupMax(v);
    rowPartial[li / 4][li % 4] = select(${LOWEST}, s, subgroupMin(li) == li);
    workgroupBarrier();
    var t = rowPartial[0];
    for (var j = 1; j < ${ROW_THREADS / 4}; j = j + 1) { t = max(t, rowPartial[j]); }
    workgroupBarrier();
    return max(max(t.x, t.y), max(t.z, t.w));
  }`;

const ROW_MAX = `
  fn rowMax(v : f32) -> f32 {
    let li = i32(localIndex);
    rowPartial[li] = v;
    workgroupBarrier();
    for (var s = ${ROW_THREADS / 2}; s > 0; s = s >> 1u) {
      if (li < s) { rowPartial[li] = max(rowPartial[li], rowPartial[li + s]); }
      workgroupBarrier();
    }
    let m = rowPartial[0];
    workgroupBarrier();
    return m;
  }`;

function rowProgram(
  name: string,
  variableNames: string[],
  outputShape: number[],
  rows: number,
  uniforms: string,
  body: string,
  subgroups: boolean,
  withMax = false,
): WebGPUProgram {
  return {
    variableNames,
    outputShape,
    uniforms,
    workgroupSize: [ROW_THREADS, 1, 1],
    // Not flat (y given), so main() takes no index; one workgroup per row.
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [rows, 1, 1],
    shaderKey: subgroups ? `${name}_subgroups` : name,
    getUserCode: () => `
      ${subgroups ? ROW_SUM_SUBGROUPS : ROW_SUM}
      ${withMax ? (subgroups ? ROW_MAX_SUBGROUPS : ROW_MAX) : ''}
      fn main() {
        let row = ${FLAT_WORKGROUP};
        let li = i32(localIndex);
        let valid = row < uniforms.rows;
        let cols = uniforms.cols;
        let base = row * cols;
        ${body}
      }`,
  };
}

export type LayerNormOutput = 'y' | 'xhat' | 'rstd';

/** LayerNorm over the last axis, one output per program: y = xhat w + b, xhat, or rstd; two-pass statistics. */
export function layerNormProgram(
  rows: number,
  cols: number,
  output: LayerNormOutput,
  subgroups: boolean,
): WebGPUProgram {
  const write = {
    y: 'result[base + c] = (X[base + c] - mean) * rstd * W[c] + Bv[c];',
    xhat: 'result[base + c] = (X[base + c] - mean) * rstd;',
    rstd: '',
  }[output];
  return rowProgram(
    `mimirLayerNorm_${output}`,
    // Only the bindings a shader reads: WebGPU's automatic layout drops the others.
    output === 'y' ? ['X', 'W', 'Bv'] : ['X'],
    output === 'rstd' ? [rows] : [rows, cols],
    rows,
    'rows : i32, cols : i32, eps : f32,',
    `
        var s = 0.0;
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { s = s + X[base + c]; } }
        let mean = rowSum(s) / f32(cols);
        var q = 0.0;
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { let d = X[base + c] - mean; q = fma(d, d, q); } }
        let rstd = 1.0 / sqrt(rowSum(q) / f32(cols) + uniforms.eps);
        if (valid) {
          ${output === 'rstd' ? 'if (li == 0) { result[row] = rstd; }' : `for (var c = li; c < cols; c = c + ${ROW_THREADS}) { ${write} }`}
        }`,
    subgroups,
  );
}

/** LayerNorm's input gradient: rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. */
export function layerNormGradProgram(rows: number, cols: number, subgroups: boolean): WebGPUProgram {
  return rowProgram(
    'mimirLayerNormGrad',
    ['DY', 'XH', 'RSTD', 'W'],
    [rows, cols],
    rows,
    'rows : i32, cols : i32,',
    `
        var sg = 0.0;
        var sgx = 0.0;
        if (valid) {
          for (var c = li; c < cols; c = c + ${ROW_THREADS}) {
            let g = DY[base + c] * W[c];
            sg = sg + g;
            sgx = fma(g, XH[base + c], sgx);
          }
        }
        let mg = rowSum(sg) / f32(cols);
        let mgx = rowSum(sgx) / f32(cols);
        if (valid) {
          let rstd = RSTD[row];
          for (var c = li; c < cols; c = c + ${ROW_THREADS}) {
            result[base + c] = rstd * (DY[base + c] * W[c] - mg - XH[base + c] * mgx);
          }
        }`,
    subgroups,
  );
}

/**
 * Softmax (or, with `log`, log-softmax) over the last axis of X [rows, cols], one workgroup per row:
 * the row max subtracted before exp, so no logit overflows it.
 */
export function softmaxProgram(rows: number, cols: number, log: boolean, subgroups: boolean): WebGPUProgram {
  const [shift, write] = log
    ? ['let logTotal = log(total);', '(X[base + c] - m) - logTotal']
    : ['', 'exp(X[base + c] - m) / total'];
  return rowProgram(
    log ? 'mimirLogSoftmax' : 'mimirSoftmax',
    ['X'],
    [rows, cols],
    rows,
    'rows : i32, cols : i32,',
    `
        var v = ${LOWEST};
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { v = max(v, X[base + c]); } }
        let m = rowMax(v);
        var s = 0.0;
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { s = s + exp(X[base + c] - m); } }
        let total = rowSum(s);
        ${shift}
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { result[base + c] = ${write}; } }`,
    subgroups,
    true,
  );
}

/**
 * The input gradient of softmaxProgram from its output Y and DY: Y (DY - sum(DY Y)) for softmax,
 * DY - exp(Y) sum(DY) for log-softmax.
 */
export function softmaxGradProgram(rows: number, cols: number, log: boolean, subgroups: boolean): WebGPUProgram {
  const [term, write] = log
    ? ['DY[base + c]', 'DY[base + c] - exp(Y[base + c]) * total']
    : ['DY[base + c] * Y[base + c]', 'Y[base + c] * (DY[base + c] - total)'];
  return rowProgram(
    log ? 'mimirLogSoftmaxGrad' : 'mimirSoftmaxGrad',
    ['DY', 'Y'],
    [rows, cols],
    rows,
    'rows : i32, cols : i32,',
    `
        var s = 0.0;
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { s = s + ${term}; } }
        let total = rowSum(s);
        if (valid) { for (var c = li; c < cols; c = c + ${ROW_THREADS}) { result[base + c] = ${write}; } }`,
    subgroups,
  );
}

const SUM_COLS = 16;
const SUM_LANES = 16;

/**
 * Sums over the rows of X [rows, cols] (`product`: false), or of DY * XH (true): 16 columns per
 * workgroup, 16 lanes each summing every 16th row, then the lanes added in workgroup memory.
 */
export function columnSumProgram(cols: number, product: boolean): WebGPUProgram {
  return {
    variableNames: product ? ['DY', 'XH'] : ['X'],
    outputShape: [cols],
    uniforms: 'rows : i32, cols : i32,',
    workgroupSize: [SUM_COLS, SUM_LANES, 1],
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [Math.ceil(cols / SUM_COLS), 1, 1],
    shaderKey: product ? 'mimirColumnSumsProduct' : 'mimirColumnSums',
    getUserCode: () => `
      var<workgroup> lanes : array<f32, ${SUM_COLS * SUM_LANES}>;
      fn main() {
        let col = ${FLAT_WORKGROUP} * ${SUM_COLS} + i32(localId.x);
        let lane = i32(localId.y);
        var s = 0.0;
        if (col < uniforms.cols) {
          for (var r = lane; r < uniforms.rows; r = r + ${SUM_LANES}) {
            s = s + ${product ? 'DY[r * uniforms.cols + col] * XH[r * uniforms.cols + col]' : 'X[r * uniforms.cols + col]'};
          }
        }
        lanes[lane * ${SUM_COLS} + i32(localId.x)] = s;
        workgroupBarrier();
        if (lane == 0 && col < uniforms.cols) {
          var total = 0.0;
          for (var l = 0; l < ${SUM_LANES}; l = l + 1) { total = total + lanes[l * ${SUM_COLS} + i32(localId.x)]; }
          result[col] = total;
        }
      }`,
  };
}
