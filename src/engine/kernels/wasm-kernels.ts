import * as tf from '@tensorflow/tfjs-core';
import { KERNELS_WASM_BASE64 } from './kernels-wasm';

/**
 * The engine's own wasm SIMD kernels (kernels.c), registered as tfjs kernels of the "wasm" backend.
 * They run on tfjs-wasm's heap: the module imports tfjs-wasm's memory, reads its tensors where they
 * lie and writes into outputs tfjs allocated, so no data is copied. Why own kernels: tfjs-wasm's
 * product runs at about 20-30 GFLOP/s on one core only for a plain 2-D product; anything transposed,
 * strided or batched (linear backward passes, attention per head) needs transposes, slices and
 * concatenations around it, or falls to a naive kernel. gemm here takes transposes and leading
 * dimensions as arguments and packs its operands itself.
 *
 * Only the single-threaded wasm build is supported (its memory is not shared); with
 * MIMIR_WASM_THREADS the engine keeps tfjs's own kernels (`wasmKernelsAvailable()` says which).
 */

interface KernelExports {
  gemm(
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: number,
    lda: number,
    transA: number,
    b: number,
    ldb: number,
    transB: number,
    c: number,
    ldc: number,
    bias: number,
    accumulate: number,
    scratch: number,
  ): void;
  gemm_scratch_floats(): number;
  softmax_backward(p: number, dp: number, rows: number, cols: number, scale: number): void;
  gelu_forward(x: number, y: number, n: number): void;
  gelu_backward(x: number, dy: number, dx: number, n: number): void;
  layer_norm_forward(
    x: number,
    w: number,
    b: number,
    y: number,
    xhat: number,
    rstd: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  layer_norm_backward(dy: number, xhat: number, rstd: number, w: number, dx: number, rows: number, cols: number): void;
  layer_norm_param_grads(dy: number, xhat: number, dw: number, db: number, rows: number, cols: number): void;
}

/** What the kernels need of tfjs-wasm's backend (checked at run time: the typings do not say it). */
interface WasmHeap {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  pointerOf(t: tf.TensorInfo): number;
  makeOutput(shape: number[]): tf.TensorInfo;
}

interface Installed {
  exports: KernelExports;
  heap: WasmHeap;
  scratch: number;
}

let compiled: WebAssembly.Module | null = null;
const installed = new WeakMap<object, Installed | Error>();

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function heapOf(backend: unknown): WasmHeap {
  if (!isRecord(backend) || !isRecord(backend.wasm)) throw new Error('not the tfjs-wasm backend');
  const wasm = backend.wasm;
  const asm = isRecord(wasm.asm) ? wasm.asm : {};
  const memory = asm.memory ?? wasm.wasmMemory;
  const malloc = wasm._malloc;
  const free = wasm._free;
  const dataIdMap = backend.dataIdMap;
  const makeOutput = backend.makeOutput;
  if (!(memory instanceof WebAssembly.Memory)) throw new Error('tfjs-wasm does not expose its memory');
  if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) {
    throw new Error('the multi-threaded tfjs-wasm build (shared memory) is not supported');
  }
  if (typeof malloc !== 'function' || typeof free !== 'function') throw new Error('tfjs-wasm has no _malloc/_free');
  if (!isRecord(dataIdMap) || typeof dataIdMap.get !== 'function' || typeof makeOutput !== 'function') {
    throw new Error('tfjs-wasm backend lacks dataIdMap/makeOutput');
  }
  const get = dataIdMap.get as (id: unknown) => unknown;
  return {
    memory,
    malloc: (bytes) => (malloc as (n: number) => number)(bytes) >>> 0,
    free: (pointer) => (free as (p: number) => void)(pointer),
    pointerOf: (t) => {
      const entry = get.call(dataIdMap, t.dataId);
      if (!isRecord(entry) || typeof entry.memoryOffset !== 'number') throw new Error('tensor has no wasm memory');
      return entry.memoryOffset;
    },
    makeOutput: (shape) => (makeOutput as (s: number[], d: string) => tf.TensorInfo).call(backend, shape, 'float32'),
  };
}

function install(backend: object): Installed {
  const known = installed.get(backend);
  if (known instanceof Error) throw known;
  if (known) return known;
  try {
    const heap = heapOf(backend);
    compiled ??= new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
    const instance = new WebAssembly.Instance(compiled, { env: { memory: heap.memory } });
    const exports = instance.exports as unknown as KernelExports;
    const scratch = heap.malloc(exports.gemm_scratch_floats() * 4 + 16);
    const result = { exports, heap, scratch: (scratch + 15) & ~15 };
    installed.set(backend, result);
    return result;
  } catch (e) {
    const error = new Error(`the engine's wasm kernels cannot run here: ${(e as Error).message}`);
    installed.set(backend, error);
    throw error;
  }
}

/** True when the active backend is tfjs-wasm and the engine's kernels run on it. */
export function wasmKernelsAvailable(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  try {
    install(tf.backend());
    return true;
  } catch {
    return false;
  }
}

function float32(t: tf.TensorInfo, what: string): number {
  if (t.dtype !== 'float32') throw new Error(`${what} must be float32`);
  return t.shape.reduce((a, b) => a * b, 1);
}

function dims2(t: tf.TensorInfo, what: string): [number, number] {
  const [r, c] = t.shape;
  if (t.shape.length !== 2 || r === undefined || c === undefined) throw new Error(`${what} must be 2-D`);
  if (t.dtype !== 'float32') throw new Error(`${what} must be float32`);
  return [r, c];
}

function attr(attrs: tf.NamedAttrMap, name: string): number {
  const v = attrs[name];
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v !== 'number') throw new Error(`attribute ${name} missing`);
  return v;
}

const registered = { done: false };

/** Registers the kernels with tfjs (once; they are looked up per backend instance when run). */
export function registerWasmKernels(): void {
  if (registered.done) return;
  registered.done = true;

  tf.registerKernel({
    kernelName: 'MimirGemm',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { exports, heap, scratch } = install(backend as object);
      const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
      const transA = attr(attrs ?? {}, 'transposeA');
      const transB = attr(attrs ?? {}, 'transposeB');
      const [ar, ac] = dims2(a, 'a');
      const [br, bc] = dims2(b, 'b');
      const [m, k] = transA ? [ac, ar] : [ar, ac];
      const [kb, n] = transB ? [bc, br] : [br, bc];
      if (k !== kb) throw new Error(`gemm: inner dimensions ${k} and ${kb} differ`);
      if (bias && (bias.shape.length !== 1 || bias.shape[0] !== n)) throw new Error(`gemm: bias must be [${n}]`);
      const out = heap.makeOutput([m, n]);
      exports.gemm(
        m,
        n,
        k,
        attr(attrs ?? {}, 'alpha'),
        heap.pointerOf(a),
        ac,
        transA,
        heap.pointerOf(b),
        bc,
        transB,
        heap.pointerOf(out),
        n,
        bias ? heap.pointerOf(bias) : 0,
        0,
        scratch,
      );
      return out;
    },
  });

  tf.registerKernel({
    kernelName: 'MimirGelu',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const { exports, heap } = install(backend as object);
      const { x } = inputs as { x: tf.TensorInfo };
      const out = heap.makeOutput(x.shape);
      exports.gelu_forward(heap.pointerOf(x), heap.pointerOf(out), float32(x, 'x'));
      return out;
    },
  });

  tf.registerKernel({
    kernelName: 'MimirGeluGrad',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const { exports, heap } = install(backend as object);
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      const n = float32(x, 'x');
      if (float32(dy, 'dy') !== n) throw new Error('gelu grad: x and dy differ in size');
      const out = heap.makeOutput(x.shape);
      exports.gelu_backward(heap.pointerOf(x), heap.pointerOf(dy), heap.pointerOf(out), n);
      return out;
    },
  });

  // x [R, D], w [D], b [D] -> y, xhat [R, D], rstd [R].
  tf.registerKernel({
    kernelName: 'MimirLayerNorm',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { exports, heap } = install(backend as object);
      const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b: tf.TensorInfo };
      const [rows, cols] = dims2(x, 'x');
      if (float32(w, 'w') !== cols || float32(b, 'b') !== cols)
        throw new Error(`layer norm: w and b must be [${cols}]`);
      const [y, xhat, rstd] = [heap.makeOutput([rows, cols]), heap.makeOutput([rows, cols]), heap.makeOutput([rows])];
      const p = heap.pointerOf;
      exports.layer_norm_forward(p(x), p(w), p(b), p(y), p(xhat), p(rstd), rows, cols, attr(attrs ?? {}, 'eps'));
      return [y, xhat, rstd];
    },
  });

  // dy, xhat [R, D], rstd [R], w [D] -> dx [R, D].
  tf.registerKernel({
    kernelName: 'MimirLayerNormGrad',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const { exports, heap } = install(backend as object);
      const { dy, xhat, rstd, w } = inputs as Record<'dy' | 'xhat' | 'rstd' | 'w', tf.TensorInfo>;
      const [rows, cols] = dims2(xhat, 'xhat');
      if (float32(dy, 'dy') !== rows * cols || float32(rstd, 'rstd') !== rows || float32(w, 'w') !== cols) {
        throw new Error('layer norm grad: dy, xhat, rstd and w do not fit');
      }
      const dx = heap.makeOutput([rows, cols]);
      const p = heap.pointerOf;
      exports.layer_norm_backward(p(dy), p(xhat), p(rstd), p(w), p(dx), rows, cols);
      return dx;
    },
  });

  // dy, xhat [R, D] -> dw, db [D].
  tf.registerKernel({
    kernelName: 'MimirLayerNormParamGrads',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const { exports, heap } = install(backend as object);
      const { dy, xhat } = inputs as Record<'dy' | 'xhat', tf.TensorInfo>;
      const [rows, cols] = dims2(xhat, 'xhat');
      if (float32(dy, 'dy') !== rows * cols) throw new Error('layer norm grad: dy and xhat differ in size');
      const [dw, db] = [heap.makeOutput([cols]), heap.makeOutput([cols])];
      const p = heap.pointerOf;
      exports.layer_norm_param_grads(p(dy), p(xhat), p(dw), p(db), rows, cols);
      return [dw, db];
    },
  });

  // Attention (see attention.ts for the layout). qkv [B*T, 3W] -> scores [B*H*T, T] = q k^T / sqrt(d).
  tf.registerKernel({
    kernelName: 'MimirAttentionScores',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { exports, heap, scratch } = install(backend as object);
      const { qkv } = inputs as { qkv: tf.TensorInfo };
      const g = attentionGeometry(qkv, attrs ?? {});
      const out = heap.makeOutput([g.batch * g.heads * g.tokens, g.tokens]);
      const base = heap.pointerOf(qkv);
      const scores = heap.pointerOf(out);
      const ld = 3 * g.width;
      for (let b = 0; b < g.batch; b++) {
        for (let h = 0; h < g.heads; h++) {
          const q = base + 4 * (b * g.tokens * ld + h * g.d);
          const k = q + 4 * g.width;
          const s = scores + 4 * (b * g.heads + h) * g.tokens * g.tokens;
          exports.gemm(g.tokens, g.tokens, g.d, g.scale, q, ld, 0, k, ld, 1, s, g.tokens, 0, 0, scratch);
        }
      }
      return out;
    },
  });

  // probabilities [B*H*T, T], qkv -> heads' outputs [B*T, W] (p v per sample and head).
  tf.registerKernel({
    kernelName: 'MimirAttentionApply',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { exports, heap, scratch } = install(backend as object);
      const { probabilities, qkv } = inputs as { probabilities: tf.TensorInfo; qkv: tf.TensorInfo };
      const g = attentionGeometry(qkv, attrs ?? {});
      const out = heap.makeOutput([g.batch * g.tokens, g.width]);
      const base = heap.pointerOf(qkv);
      const p = heap.pointerOf(probabilities);
      const o = heap.pointerOf(out);
      const ld = 3 * g.width;
      for (let b = 0; b < g.batch; b++) {
        for (let h = 0; h < g.heads; h++) {
          const v = base + 4 * (b * g.tokens * ld + 2 * g.width + h * g.d);
          const pbh = p + 4 * (b * g.heads + h) * g.tokens * g.tokens;
          const obh = o + 4 * (b * g.tokens * g.width + h * g.d);
          exports.gemm(g.tokens, g.d, g.tokens, 1, pbh, g.tokens, 0, v, ld, 0, obh, g.width, 0, 0, scratch);
        }
      }
      return out;
    },
  });

  // probabilities, qkv, dOut [B*T, W] -> dqkv [B*T, 3W].
  tf.registerKernel({
    kernelName: 'MimirAttentionBackward',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { exports, heap, scratch } = install(backend as object);
      const { probabilities, qkv, dOut } = inputs as {
        probabilities: tf.TensorInfo;
        qkv: tf.TensorInfo;
        dOut: tf.TensorInfo;
      };
      const g = attentionGeometry(qkv, attrs ?? {});
      const out = heap.makeOutput([g.batch * g.tokens, 3 * g.width]);
      const base = heap.pointerOf(qkv);
      const p = heap.pointerOf(probabilities);
      const dO = heap.pointerOf(dOut);
      const dq = heap.pointerOf(out);
      const T = g.tokens;
      const ld = 3 * g.width;
      const dp = heap.malloc(4 * T * T);
      try {
        for (let b = 0; b < g.batch; b++) {
          for (let h = 0; h < g.heads; h++) {
            const row = b * T * ld + h * g.d;
            const [q, k, v] = [0, 1, 2].map((part) => base + 4 * (row + part * g.width)) as [number, number, number];
            const [gq, gk, gv] = [0, 1, 2].map((part) => dq + 4 * (row + part * g.width)) as [number, number, number];
            const pbh = p + 4 * (b * g.heads + h) * T * T;
            const dObh = dO + 4 * (b * T * g.width + h * g.d);
            // dV = P^T dO; dP = dO V^T; dS = scale * P * (dP - rowsum(dP * P)); dQ = dS K; dK = dS^T Q.
            exports.gemm(T, g.d, T, 1, pbh, T, 1, dObh, g.width, 0, gv, ld, 0, 0, scratch);
            exports.gemm(T, T, g.d, 1, dObh, g.width, 0, v, ld, 1, dp, T, 0, 0, scratch);
            exports.softmax_backward(pbh, dp, T, T, g.scale);
            exports.gemm(T, g.d, T, 1, dp, T, 0, k, ld, 0, gq, ld, 0, 0, scratch);
            exports.gemm(T, g.d, T, 1, dp, T, 1, q, ld, 0, gk, ld, 0, 0, scratch);
          }
        }
      } finally {
        heap.free(dp);
      }
      return out;
    },
  });
}

interface AttentionGeometry {
  batch: number;
  tokens: number;
  heads: number;
  width: number;
  d: number;
  scale: number;
}

function attentionGeometry(qkv: tf.TensorInfo, attrs: tf.NamedAttrMap): AttentionGeometry {
  const [rows, cols] = dims2(qkv, 'qkv');
  const batch = attr(attrs, 'batch');
  const heads = attr(attrs, 'heads');
  const tokens = rows / batch;
  const width = cols / 3;
  const d = width / heads;
  if (!Number.isInteger(tokens) || !Number.isInteger(d)) {
    throw new Error(`qkv [${rows}, ${cols}] does not fit batch ${batch} and ${heads} heads`);
  }
  return { batch, tokens, heads, width, d, scale: 1 / Math.sqrt(d) };
}
