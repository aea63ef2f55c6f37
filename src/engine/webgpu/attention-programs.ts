import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/**
 * Fused multi-head attention in the FlashAttention-2 manner: no T x T matrix ever reaches global
 * memory. qkv is [B*T, 3W] (columns (q|k|v, head, dim), as in model/attention.ts). One workgroup
 * per (sample, head, tile of flashTile(d) rows), one thread per row; the other side's rows stream
 * through workgroup memory a tile at a time. Every barrier sits in a loop bounded by uniforms only
 * (tfjs's workgroupId is a private variable, which WGSL's uniformity analysis treats as non-uniform).
 */

/** WebGPU's default maxComputeWorkgroupStorageSize, which every device offers. */
const WORKGROUP_STORAGE = 16384;

/**
 * Rows per tile for head dimension d: the largest of 32, 16, 8 whose staged tiles (two of rows x d
 * floats, and two per-row floats in the backward) fit WORKGROUP_STORAGE: 32 up to d = 63, 16 up to 127, 8 up to 255.
 */
export function flashTile(d: number): number {
  const tile = [32, 16, 8].find((rows) => 4 * (2 * rows * d + 2 * rows) <= WORKGROUP_STORAGE);
  if (tile === undefined) throw new Error(`flash attention: head dimension ${d} is too large (at most 255)`);
  return tile;
}

/** The workgroup's index in a dispatch that tfjs may have folded into y and z. */
const FLAT_WORKGROUP = `i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x)`;

const UNIFORMS = 'T : i32, H : i32, groups : i32, scale : f32,';

/** Splits the workgroup index g into (b, h, tile) and this thread's row i of the tile. */
function geometry(B: number): string {
  return `
        let li = i32(localIndex);
        let T = uniforms.T;
        let H = uniforms.H;
        let tiles = (T + ${B} - 1) / ${B};
        let tile = g % tiles;
        let h = (g / tiles) % H;
        let b = g / (tiles * H);
        let i = tile * ${B} + li;
        let valid = live && i < T;`;
}

/** Workgroups of the forward pass (the backward runs two per group: query and key roles). */
export function flashAttentionGroups(batch: number, tokens: number, heads: number, d: number): number {
  return batch * heads * Math.ceil(tokens / flashTile(d));
}

/**
 * Forward: out [B*T, W] and the rows' logsumexp [B*T, H] packed side by side in one [B*T, W + H]
 * output (a tfjs program has one output). Online softmax: running max m and sum l, the
 * accumulator rescaled whenever m grows.
 */
export function flashAttentionProgram(batch: number, tokens: number, heads: number, d: number): WebGPUProgram {
  const B = flashTile(d);
  return {
    variableNames: ['QKV'],
    outputShape: [batch * tokens, heads * d + heads],
    uniforms: UNIFORMS,
    workgroupSize: [B, 1, 1],
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [flashAttentionGroups(batch, tokens, heads, d), 1, 1],
    shaderKey: `mimirFlashAttention_${d}`,
    getUserCode: () => `
      var<workgroup> tileK : array<f32, ${B * d}>;
      var<workgroup> tileV : array<f32, ${B * d}>;
      fn main() {
        let g = ${FLAT_WORKGROUP};
        let live = g < uniforms.groups;
        ${geometry(B)}
        let W = H * ${d};
        let ld = 3 * W;
        var q : array<f32, ${d}>;
        var acc : array<f32, ${d}>;
        var m = -3.0e38;
        var l = 0.0;
        if (valid) {
          let base = (b * T + i) * ld + h * ${d};
          for (var c = 0; c < ${d}; c = c + 1) { q[c] = QKV[base + c] * uniforms.scale; }
        }
        for (var t0 = 0; t0 < T; t0 = t0 + ${B}) {
          if (live) {
            for (var e = li; e < ${B * d}; e = e + ${B}) {
              let j = t0 + e / ${d};
              var kv = 0.0;
              var vv = 0.0;
              if (j < T) {
                let at = (b * T + j) * ld + W + h * ${d} + e % ${d};
                kv = QKV[at];
                vv = QKV[at + W];
              }
              tileK[e] = kv;
              tileV[e] = vv;
            }
          }
          workgroupBarrier();
          if (valid) {
            let n = min(${B}, T - t0);
            for (var r = 0; r < n; r = r + 1) {
              var s = 0.0;
              for (var c = 0; c < ${d}; c = c + 1) { s = fma(q[c], tileK[r * ${d} + c], s); }
              if (s > m) {
                let f = exp(m - s);
                l = l * f;
                for (var c = 0; c < ${d}; c = c + 1) { acc[c] = acc[c] * f; }
                m = s;
              }
              let p = exp(s - m);
              l = l + p;
              for (var c = 0; c < ${d}; c = c + 1) { acc[c] = fma(p, tileV[r * ${d} + c], acc[c]); }
            }
          }
          workgroupBarrier();
        }
        if (valid) {
          let row = (b * T + i) * (W + H);
          for (var c = 0; c < ${d}; c = c + 1) { result[row + h * ${d} + c] = acc[c] / l; }
          result[row + W + h] = m + log(l);
        }
      }`,
  };
}

/**
 * Backward: d qkv [B*T, 3W] from qkv, the forward's packed [out | logsumexp] and d out [B*T, W].
 * The probabilities are recomputed from the logsumexp, p = exp(s - lse), and
 * ds = p (dO v^T - rowsum(dO o)) as in FlashAttention-2. Two workgroups per (sample, head, tile):
 * role 0 owns a tile of query rows and accumulates dq over the key tiles; role 1 owns a tile of key
 * rows and accumulates dk and dv over the query tiles. They write disjoint columns: no atomics.
 */
export function flashAttentionGradProgram(batch: number, tokens: number, heads: number, d: number): WebGPUProgram {
  const B = flashTile(d);
  return {
    variableNames: ['QKV', 'O', 'DO'],
    outputShape: [batch * tokens, 3 * heads * d],
    uniforms: UNIFORMS,
    workgroupSize: [B, 1, 1],
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [2 * flashAttentionGroups(batch, tokens, heads, d), 1, 1],
    shaderKey: `mimirFlashAttentionGrad_${d}`,
    getUserCode: () => `
      var<workgroup> tileA : array<f32, ${B * d}>;
      var<workgroup> tileB : array<f32, ${B * d}>;
      var<workgroup> rowLse : array<f32, ${B}>;
      var<workgroup> rowDelta : array<f32, ${B}>;
      fn main() {
        let wg = ${FLAT_WORKGROUP};
        let live = wg < 2 * uniforms.groups;
        let role = wg % 2;
        let g = wg / 2;
        ${geometry(B)}
        let W = H * ${d};
        let ld = 3 * W;
        let ldo = W + H;
        let scale = uniforms.scale;
        // Role 0: x = q (scaled) and y = dO of row i; role 1: x = k and y = v of row i.
        var x : array<f32, ${d}>;
        var y : array<f32, ${d}>;
        var acc1 : array<f32, ${d}>;
        var acc2 : array<f32, ${d}>;
        var lse = 0.0;
        var delta = 0.0;
        if (valid) {
          let row = b * T + i;
          for (var c = 0; c < ${d}; c = c + 1) {
            let col = h * ${d} + c;
            if (role == 0) {
              x[c] = QKV[row * ld + col] * scale;
              y[c] = DO[row * W + col];
              delta = fma(y[c], O[row * ldo + col], delta);
            } else {
              x[c] = QKV[row * ld + W + col];
              y[c] = QKV[row * ld + 2 * W + col];
            }
          }
          lse = O[row * ldo + W + h];
        }
        for (var t0 = 0; t0 < T; t0 = t0 + ${B}) {
          // Stage the other side's tile: k and v (role 0), or scaled q, dO, lse and rowsum(dO o) (role 1).
          if (live) {
            for (var e = li; e < ${B * d}; e = e + ${B}) {
              let j = t0 + e / ${d};
              let col = h * ${d} + e % ${d};
              var a = 0.0;
              var v = 0.0;
              if (j < T) {
                let row = b * T + j;
                if (role == 0) {
                  a = QKV[row * ld + W + col];
                  v = QKV[row * ld + 2 * W + col];
                } else {
                  a = QKV[row * ld + col] * scale;
                  v = DO[row * W + col];
                }
              }
              tileA[e] = a;
              tileB[e] = v;
            }
            if (role == 1) {
              let j = t0 + li;
              var lj = 0.0;
              var dj = 0.0;
              if (j < T) {
                let row = b * T + j;
                lj = O[row * ldo + W + h];
                for (var c = 0; c < ${d}; c = c + 1) {
                  dj = fma(DO[row * W + h * ${d} + c], O[row * ldo + h * ${d} + c], dj);
                }
              }
              rowLse[li] = lj;
              rowDelta[li] = dj;
            }
          }
          workgroupBarrier();
          if (valid) {
            let n = min(${B}, T - t0);
            for (var r = 0; r < n; r = r + 1) {
              var s = 0.0;
              var dp = 0.0;
              for (var c = 0; c < ${d}; c = c + 1) {
                s = fma(x[c], tileA[r * ${d} + c], s);
                dp = fma(y[c], tileB[r * ${d} + c], dp);
              }
              if (role == 0) {
                let p = exp(s - lse);
                let ds = p * (dp - delta);
                for (var c = 0; c < ${d}; c = c + 1) { acc1[c] = fma(ds, tileA[r * ${d} + c], acc1[c]); }
              } else {
                let p = exp(s - rowLse[r]);
                let ds = p * (dp - rowDelta[r]);
                for (var c = 0; c < ${d}; c = c + 1) {
                  acc1[c] = fma(ds, tileA[r * ${d} + c], acc1[c]);
                  acc2[c] = fma(p, tileB[r * ${d} + c], acc2[c]);
                }
              }
            }
          }
          workgroupBarrier();
        }
        if (valid) {
          let row = (b * T + i) * ld + h * ${d};
          for (var c = 0; c < ${d}; c = c + 1) {
            if (role == 0) {
              result[row + c] = acc1[c] * scale;
            } else {
              result[row + W + c] = acc1[c];
              result[row + 2 * W + c] = acc2[c];
            }
          }
        }
      }`,
  };
}
