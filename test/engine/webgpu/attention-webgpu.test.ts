import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { flashAttention, flashAttentionGrad } from '../../../src/engine/kernels';
import { multiHeadAttention, resolveAttentionStrategy } from '../../../src/engine/model/attention';
import { flashTile } from '../../../src/engine/webgpu/attention-programs';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { randomMat, relativeError, tensorOf, type Mat } from '../kernels/kernel-suite';
import { Rng } from '../model/fixtures';
import { useSwiftShader } from './swiftshader';

interface Reference {
  out: Float64Array;
  /** logsumexp of each (row, head)'s scaled scores, [B*T, H]. */
  lse: Float64Array;
  /** d qkv of sum(out * dOut). */
  grad: Float64Array;
}

/** float64 attention per (sample, head): S = q k^T / sqrt(d), P = softmax(S), O = P v, and its chain rule. */
function reference(qkv: Mat, dOut: Mat, batch: number, heads: number): Reference {
  const tokens = qkv.rows / batch;
  const width = qkv.cols / 3;
  const d = width / heads;
  const scale = 1 / Math.sqrt(d);
  const at = (m: Mat, r: number, c: number) => m.data[r * m.cols + c] ?? 0;
  const out = new Float64Array(qkv.rows * width);
  const lse = new Float64Array(qkv.rows * heads);
  const grad = new Float64Array(qkv.rows * 3 * width);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const row = (t: number) => b * tokens + t;
      const col = (part: number, x: number) => part * width + h * d + x;
      const dotRows = (m1: Mat, r1: number, c1: number, m2: Mat, r2: number, c2: number) => {
        let s = 0;
        for (let x = 0; x < d; x++) s += at(m1, r1, c1 + x) * at(m2, r2, c2 + x);
        return s;
      };
      const P: number[][] = [];
      for (let i = 0; i < tokens; i++) {
        const s = Array.from(
          { length: tokens },
          (_, j) => scale * dotRows(qkv, row(i), col(0, 0), qkv, row(j), col(1, 0)),
        );
        const max = Math.max(...s);
        const sum = s.reduce((a, v) => a + Math.exp(v - max), 0);
        lse[row(i) * heads + h] = max + Math.log(sum);
        P.push(s.map((v) => Math.exp(v - max) / sum));
        for (let x = 0; x < d; x++) {
          let o = 0;
          for (let j = 0; j < tokens; j++) o += (P[i]?.[j] ?? 0) * at(qkv, row(j), col(2, x));
          out[row(i) * width + h * d + x] = o;
        }
      }
      for (let i = 0; i < tokens; i++) {
        const p = P[i] ?? [];
        const dp = Array.from({ length: tokens }, (_, j) => dotRows(dOut, row(i), h * d, qkv, row(j), col(2, 0)));
        const rowDot = p.reduce((a, v, j) => a + v * (dp[j] ?? 0), 0);
        for (let j = 0; j < tokens; j++) {
          const pj = p[j] ?? 0;
          const ds = pj * ((dp[j] ?? 0) - rowDot) * scale;
          for (let x = 0; x < d; x++) {
            grad[row(i) * 3 * width + col(0, x)] += ds * at(qkv, row(j), col(1, x));
            grad[row(j) * 3 * width + col(1, x)] += ds * at(qkv, row(i), col(0, x));
            grad[row(j) * 3 * width + col(2, x)] += pj * at(dOut, row(i), h * d + x);
          }
        }
      }
    }
  }
  return { out, lse, grad };
}

/** Reads tensors asynchronously (webgpu under Node has no synchronous read), disposes them, and fails on device errors. */
async function read(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(tensors.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(tensors);
  expect(takeWebgpuDeviceErrors()).toEqual([]);
  return out;
}

function columns(data: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const out = new Float32Array(rows * (to - from));
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols + from, r * cols + to), r * (to - from));
  return out;
}

describe('fused flash attention on webgpu (SwiftShader) against float64', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('is the attention strategy the model uses on webgpu', () => {
    expect(resolveAttentionStrategy('auto')).toBe('flash');
  });

  it('tiles rows so that the staged tiles fit 16 KiB of workgroup memory, refusing head dims beyond', () => {
    expect([8, 16, 63, 64, 127, 128, 255].map(flashTile)).toEqual([32, 32, 32, 16, 16, 8, 8]);
    expect(() => flashTile(256)).toThrow(/head dimension 256 is too large/);
  });

  // Token counts cross the key/query tile edges (32 rows for head dims up to 63, 16 for ViT-S's 64):
  // a lone token, less than a tile, a tile and one, two tiles and one. `spread` scales qkv: at 4 the
  // scores reach tens, so the online softmax's running max is overtaken many times.
  it.each([
    [1, 8, 1],
    [17, 8, 1],
    [flashTile(16) + 1, 16, 1],
    [2 * flashTile(8) + 1, 8, 4],
    [2 * flashTile(16) + 1, 16, 1],
    [flashTile(64) + 1, 64, 1],
    [2 * flashTile(64) + 1, 64, 2],
  ])('%i tokens, head dim %i, spread %i: output, logsumexp and d qkv match', async (tokens, d, spread) => {
    const [batch, heads] = [2, 2];
    const width = heads * d;
    const rows = batch * tokens;
    const rng = new Rng(tokens * 100 + d + spread);
    const qkv = randomMat(rows, 3 * width, rng);
    for (let i = 0; i < qkv.data.length; i++) qkv.data[i] = Math.fround((qkv.data[i] ?? 0) * spread);
    const dOut = randomMat(rows, width, rng);
    const want = reference(qkv, dOut, batch, heads);

    const attrs = { batch, heads };
    const tq = tensorOf(qkv);
    const td = tensorOf(dOut);
    const packed = flashAttention(tq, attrs);
    expect(packed.shape).toEqual([rows, width + heads]);
    const grad = flashAttentionGrad(tq, packed, td, attrs);
    expect(grad.shape).toEqual([rows, 3 * width]);
    const [p, g] = await read([packed, grad, tq, td]);
    const got = p ?? new Float32Array();
    expect(relativeError(columns(got, rows, width + heads, 0, width), want.out), 'out').toBeLessThan(2e-6);
    expect(relativeError(columns(got, rows, width + heads, width, width + heads), want.lse), 'lse').toBeLessThan(2e-6);
    expect(relativeError(g ?? new Float32Array(), want.grad), 'd qkv').toBeLessThan(1e-5);
  });

  it('multiHeadAttention on webgpu gives the reference value and gradient through tfjs autodiff', async () => {
    const [batch, tokens, heads, d] = [2, flashTile(8) + 3, 3, 8];
    const width = heads * d;
    const rng = new Rng(5);
    const qkv = randomMat(batch * tokens, 3 * width, rng);
    const dOut = randomMat(batch * tokens, width, rng);
    const want = reference(qkv, dOut, batch, heads);
    const tq = tensorOf(qkv);
    const td = tensorOf(dOut);
    const out = multiHeadAttention(tq, { batch, tokens, heads });
    const grad = tf.grad((x: tf.Tensor) =>
      tf.sum(tf.mul(multiHeadAttention(x as tf.Tensor2D, { batch, tokens, heads }), td)),
    )(tq);
    const [o, g] = await read([out, grad, tq, td]);
    expect(relativeError(o ?? new Float32Array(), want.out)).toBeLessThan(2e-6);
    expect(relativeError(g ?? new Float32Array(), want.grad)).toBeLessThan(1e-5);
  });

  it('refuses a qkv that does not fit the heads, saying so', () => {
    const qkv = tf.zeros([4, 10]) as tf.Tensor2D;
    expect(() => flashAttention(qkv, { batch: 2, heads: 2 })).toThrow(/does not fit batch 2 and 2 heads/);
    qkv.dispose();
  });

  // Outside MHSA (GPSA, CaiT's class attention and talking heads, the losses) the engine calls
  // tf.softmax / tf.logSoftmax, which tfjs-webgpu runs as one fused workgroup per row (64 or 256
  // threads). Row lengths cross the workgroup's width; logits of +-80 overflow exp without the max.
  it.each([1, 10, 65, 300])(
    'tf.softmax and tf.logSoftmax over rows of %i match float64 with logits up to 80',
    async (cols) => {
      const rows = 3;
      const rng = new Rng(cols);
      const x = randomMat(rows, cols, rng);
      for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround((x.data[i] ?? 0) * 80);
      const wantSoft = new Float64Array(rows * cols);
      const wantLog = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        const row = Array.from(x.data.subarray(r * cols, (r + 1) * cols));
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
        row.forEach((v, j) => {
          wantSoft[r * cols + j] = Math.exp(v - lse);
          wantLog[r * cols + j] = v - lse;
        });
      }
      const t = tensorOf(x);
      const [soft, log] = await read([tf.softmax(t), tf.logSoftmax(t), t]);
      expect(relativeError(soft ?? new Float32Array(), wantSoft), 'softmax').toBeLessThan(2e-6);
      // Absolute against max(1, |want|): a row of one has log-probability exactly 0.
      const logError = wantLog.reduce((e, w, i) => Math.max(e, Math.abs((log?.[i] ?? NaN) - w)), 0);
      expect(logError / Math.max(1, ...Array.from(wantLog, Math.abs)), 'logSoftmax').toBeLessThan(2e-6);
    },
  );
});
