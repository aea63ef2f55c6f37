import * as tf from '@tensorflow/tfjs-core';
import { isRecord } from '@shared/unknown-value';
import { activeWasmThreads } from '../wasm-threads';
import { dims2, gemmShape } from './kernel-args';
import { KERNELS_SHARED_WASM_BASE64, KERNELS_WASM_BASE64 } from './kernels-wasm';
import { MAX_TASKS, SCRATCH, SingleThreadRunner, TEMP, ThreadPoolRunner, type KernelRunner, type Task } from './runner';

/**
 * The engine's own wasm SIMD kernels (kernels.c), registered as tfjs kernels of the "wasm" backend.
 * They run on tfjs-wasm's heap: the module imports tfjs-wasm's memory, reads its tensors where they
 * lie and writes into outputs tfjs allocated, so no data is copied. Why own kernels: tfjs-wasm's
 * product runs at about 20-30 GFLOP/s on one core only for a plain 2-D product; anything transposed,
 * strided or batched (linear backward passes, attention per head) needs transposes, slices and
 * concatenations around it, or falls to a naive kernel. gemm here takes transposes and leading
 * dimensions as arguments and packs its operands itself.
 *
 * On tfjs-wasm's multi-threaded build (shared memory) the kernels run on the threads registered in
 * wasm-threads.ts (runner.ts): each thread computes whole rows, columns or (sample, head) pairs with
 * the same code as one thread would.
 */

/** What the kernels need of tfjs-wasm's backend (checked at run time: the typings do not say it). */
interface WasmHeap {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  pointerOf(t: tf.TensorInfo): number;
  makeOutput(shape: number[]): tf.TensorInfo;
}

interface Installed {
  runner: KernelRunner;
  heap: WasmHeap;
  /** The kernel_constants table the element-wise kernels read. */
  constants: number;
  /** Floats of op(B) [k x n] packed by pack_b_all. */
  packedBFloats: (k: number, n: number) => number;
}

const compiled: { plain?: WebAssembly.Module; shared?: WebAssembly.Module } = {};
const installed = new WeakMap<object, Installed | Error>();

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
    const shared = typeof SharedArrayBuffer !== 'undefined' && heap.memory.buffer instanceof SharedArrayBuffer;
    const module = shared
      ? (compiled.shared ??= new WebAssembly.Module(Buffer.from(KERNELS_SHARED_WASM_BASE64, 'base64')))
      : (compiled.plain ??= new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64')));
    const exports = new WebAssembly.Instance(module, { env: { memory: heap.memory } }).exports;
    const { gemm_scratch_floats: scratchFloats, kernel_constants: fillConstants } = exports;
    const { kernel_constants_count: constantsCount, packed_b_floats: packedBFloats } = exports;
    if (
      typeof scratchFloats !== 'function' ||
      typeof fillConstants !== 'function' ||
      typeof constantsCount !== 'function' ||
      typeof packedBFloats !== 'function'
    ) {
      throw new Error('kernels wasm lacks gemm_scratch_floats, kernel_constants or packed_b_floats');
    }
    const constants = heap.malloc(4 * Number(constantsCount()));
    fillConstants(constants);
    // Several threads need the shared memory of the multi-threaded build (wasm-threads.ts).
    const threads = shared ? Math.max(1, activeWasmThreads() ?? 1) : 1;
    const scratches = Array.from({ length: threads }, () => heap.malloc(4 * Number(scratchFloats())));
    const runner =
      threads > 1
        ? new ThreadPoolRunner(module, heap.memory, exports, heap, scratches)
        : new SingleThreadRunner(exports, heap, scratches[0] ?? 0);
    const result = {
      runner,
      heap,
      constants,
      packedBFloats: (k: number, n: number) => Number((packedBFloats as (k: number, n: number) => number)(k, n)),
    };
    installed.set(backend, result);
    shareOnIdentity();
    return result;
  } catch (e) {
    const error = new Error(`the engine's wasm kernels cannot run here: ${(e as Error).message}`);
    installed.set(backend, error);
    throw error;
  }
}

const identityShared = { done: false };

/**
 * tfjs clones every tensor a custom gradient saves (Identity), and tfjs-wasm's Identity copies the
 * data: on a PGD-AT step that is about 3% of the time, copying what nothing will write to (tfjs
 * tensors are immutable; kernels write only their outputs). tfjs-cpu's Identity shares the data
 * under a reference count, as tfjs-wasm's own Reshape does: the same here.
 */
function shareOnIdentity(): void {
  if (identityShared.done) return;
  identityShared.done = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const { x } = inputs as { x: tf.TensorInfo };
      (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
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

/** Threads the engine's kernels run on (0 where they do not run: off wasm). */
export function wasmKernelThreads(): number {
  return wasmKernelsAvailable() ? install(tf.backend()).runner.threads : 0;
}

function float32(t: tf.TensorInfo, what: string): number {
  if (t.dtype !== 'float32') throw new Error(`${what} must be float32`);
  return t.shape.reduce((a, b) => a * b, 1);
}

function attr(attrs: tf.NamedAttrMap, name: string): number {
  const v = attrs[name];
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v !== 'number') throw new Error(`attribute ${name} missing`);
  return v;
}

const registered = { done: false };

/** Registers a kernel of the "wasm" backend; `run` gets the kernels installed on the calling backend. */
function registerWasmKernel(
  kernelName: string,
  run: (
    installed: Installed,
    call: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap },
  ) => tf.TensorInfo | tf.TensorInfo[],
): void {
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => run(install(backend as object), { inputs, attrs }),
  });
}

/** Registers the kernels with tfjs (once; they are looked up per backend instance when run). */
export function registerWasmKernels(): void {
  if (registered.done) return;
  registered.done = true;

  registerWasmKernel('MimirGemm', ({ runner, heap, packedBFloats }, { inputs, attrs }) => {
    const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
    const transA = attr(attrs ?? {}, 'transposeA');
    const transB = attr(attrs ?? {}, 'transposeB');
    const { m, n, k, aCols: ac, bCols: bc } = gemmShape(a, b, bias, transA !== 0, transB !== 0);
    const out = heap.makeOutput([m, n]);
    const [pa, pb, pc] = [heap.pointerOf(a), heap.pointerOf(b), heap.pointerOf(out)];
    const alpha = attr(attrs ?? {}, 'alpha');
    const pbias = bias ? heap.pointerOf(bias) : 0;
    if (runner.threads === 1) {
      runner.run([{ fn: 'gemm', args: [m, n, k, alpha, pa, ac, transA, pb, bc, transB, pc, n, pbias, 0, SCRATCH] }]);
    } else if (m >= 4 * runner.threads * GEMM_BLOCK) {
      // Blocks of rows of op(A) and C, over op(B) packed once for all of them.
      const packed = heap.malloc(4 * packedBFloats(k, n));
      try {
        runner.run([{ fn: 'pack_b_all', args: [pb, bc, transB, k, n, packed] }]);
        runner.run(
          blocks(m, GEMM_BLOCK).map(([i0, rows]) => ({
            fn: 'gemm_packed',
            args: [rows, n, k, alpha, pa + 4 * (transA ? i0 : i0 * ac), ac, transA, packed, pc + 4 * i0 * n, n].concat([
              pbias,
              0,
              SCRATCH,
            ]),
          })),
        );
      } finally {
        heap.free(packed);
      }
    } else {
      // Too few rows to share (weight gradients: [in, R] x [R, out]): blocks of columns of op(B) and C.
      runner.run(
        blocks(n, NR * Math.ceil(n / (NR * 4 * runner.threads))).map(([j0, cols]) => ({
          fn: 'gemm',
          args: [m, cols, k, alpha, pa, ac, transA, pb + 4 * (transB ? j0 * bc : j0), bc, transB].concat([
            pc + 4 * j0,
            n,
            pbias ? pbias + 4 * j0 : 0,
            0,
            SCRATCH,
          ]),
        })),
      );
    }
    return out;
  });

  registerWasmKernel('MimirGelu', ({ runner, heap, constants }, { inputs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const out = heap.makeOutput(x.shape);
    const [px, py] = [heap.pointerOf(x), heap.pointerOf(out)];
    runner.run(
      blocks(float32(x, 'x'), ELEMENT_BLOCK).map(([i0, n]) => ({
        fn: 'gelu_forward',
        args: [px + 4 * i0, py + 4 * i0, n, constants],
      })),
    );
    return out;
  });

  // x -> [GELU(x), its slope Phi(x) + x phi(x)] (the backward pass is then dy * slope).
  registerWasmKernel('MimirGeluWithSlope', ({ runner, heap, constants }, { inputs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const [y, slope] = [heap.makeOutput(x.shape), heap.makeOutput(x.shape)];
    const [px, py, ps] = [heap.pointerOf(x), heap.pointerOf(y), heap.pointerOf(slope)];
    runner.run(
      blocks(float32(x, 'x'), ELEMENT_BLOCK).map(([i0, n]) => ({
        fn: 'gelu_forward_slope',
        args: [px + 4 * i0, py + 4 * i0, ps + 4 * i0, n, constants],
      })),
    );
    return [y, slope];
  });

  // x [R, C] -> its column sums [C].
  registerWasmKernel('MimirColumnSums', ({ runner, heap }, { inputs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const [rows, cols] = dims2(x, 'x');
    const out = heap.makeOutput([cols]);
    const [px, py] = [heap.pointerOf(x), heap.pointerOf(out)];
    runner.run(
      blocks(cols, Math.max(4, Math.ceil(cols / (4 * runner.threads)))).map(([j0, n]) => ({
        fn: 'column_sums',
        args: [px + 4 * j0, rows, n, cols, py + 4 * j0],
      })),
    );
    return out;
  });

  // x [R, D], w [D], b [D] -> y, xhat [R, D], rstd [R].
  registerWasmKernel('MimirLayerNorm', ({ runner, heap }, { inputs, attrs }) => {
    const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b: tf.TensorInfo };
    const [rows, cols] = dims2(x, 'x');
    if (float32(w, 'w') !== cols || float32(b, 'b') !== cols) {
      throw new Error(`layer norm: w and b must be [${cols}]`);
    }
    const [y, xhat, rstd] = [heap.makeOutput([rows, cols]), heap.makeOutput([rows, cols]), heap.makeOutput([rows])];
    const p = heap.pointerOf;
    const eps = attr(attrs ?? {}, 'eps');
    runner.run(
      blocks(rows, rowBlock(cols)).map(([r0, n]) => ({
        fn: 'layer_norm_forward',
        args: [
          p(x) + 4 * r0 * cols,
          p(w),
          p(b),
          p(y) + 4 * r0 * cols,
          p(xhat) + 4 * r0 * cols,
          p(rstd) + 4 * r0,
        ].concat([n, cols, eps]),
      })),
    );
    return [y, xhat, rstd];
  });

  // dy, xhat [R, D], rstd [R], w [D] -> dx [R, D].
  registerWasmKernel('MimirLayerNormGrad', ({ runner, heap }, { inputs }) => {
    const { dy, xhat, rstd, w } = inputs as Record<'dy' | 'xhat' | 'rstd' | 'w', tf.TensorInfo>;
    const [rows, cols] = dims2(xhat, 'xhat');
    if (float32(dy, 'dy') !== rows * cols || float32(rstd, 'rstd') !== rows || float32(w, 'w') !== cols) {
      throw new Error('layer norm grad: dy, xhat, rstd and w do not fit');
    }
    const dx = heap.makeOutput([rows, cols]);
    const p = heap.pointerOf;
    runner.run(
      blocks(rows, rowBlock(cols)).map(([r0, n]) => ({
        fn: 'layer_norm_backward',
        args: [p(dy) + 4 * r0 * cols, p(xhat) + 4 * r0 * cols, p(rstd) + 4 * r0, p(w), p(dx) + 4 * r0 * cols].concat([
          n,
          cols,
        ]),
      })),
    );
    return dx;
  });

  // dy, xhat [R, D] -> dw, db [D].
  registerWasmKernel('MimirLayerNormParamGrads', ({ runner, heap }, { inputs }) => {
    const { dy, xhat } = inputs as Record<'dy' | 'xhat', tf.TensorInfo>;
    const [rows, cols] = dims2(xhat, 'xhat');
    if (float32(dy, 'dy') !== rows * cols) throw new Error('layer norm grad: dy and xhat differ in size');
    const [dw, db] = [heap.makeOutput([cols]), heap.makeOutput([cols])];
    const p = heap.pointerOf;
    // Column sums over all rows: one task (cheap; splitting it would need a reduction).
    runner.run([{ fn: 'layer_norm_param_grads', args: [p(dy), p(xhat), p(dw), p(db), rows, cols] }]);
    return [dw, db];
  });

  // Attention (see attention.ts for the layout). qkv [B*T, 3W] -> probabilities [B*H*T, T] =
  // softmax(q k^T / sqrt(d)) per sample and head.
  registerWasmKernel('MimirAttentionProbabilities', ({ runner, heap, constants }, { inputs, attrs }) => {
    const { qkv } = inputs as { qkv: tf.TensorInfo };
    const g = attentionGeometry(qkv, attrs ?? {});
    const T = g.tokens;
    const out = heap.makeOutput([g.batch * g.heads * T, T]);
    const [base, probabilities] = [heap.pointerOf(qkv), heap.pointerOf(out)];
    runner.run(
      perHead(g, (b, h) => {
        const q = base + 4 * (b * T * g.ld + h * g.d);
        const p = probabilities + 4 * (b * g.heads + h) * T * T;
        return {
          fn: 'attention_probabilities_head',
          args: [q, q + 4 * g.width, g.ld, p, T, g.d, g.scale, SCRATCH, constants],
        };
      }),
    );
    return out;
  });

  // probabilities [B*H*T, T], qkv -> heads' outputs [B*T, W] (p v per sample and head).
  registerWasmKernel('MimirAttentionApply', ({ runner, heap }, { inputs, attrs }) => {
    const { probabilities, qkv } = inputs as { probabilities: tf.TensorInfo; qkv: tf.TensorInfo };
    const g = attentionGeometry(qkv, attrs ?? {});
    const T = g.tokens;
    const out = heap.makeOutput([g.batch * T, g.width]);
    const [base, p, o] = [heap.pointerOf(qkv), heap.pointerOf(probabilities), heap.pointerOf(out)];
    runner.run(
      perHead(g, (b, h) => {
        const v = base + 4 * (b * T * g.ld + 2 * g.width + h * g.d);
        const pbh = p + 4 * (b * g.heads + h) * T * T;
        const obh = o + 4 * (b * T * g.width + h * g.d);
        return { fn: 'gemm', args: [T, g.d, T, 1, pbh, T, 0, v, g.ld, 0, obh, g.width, 0, 0, SCRATCH] };
      }),
    );
    return out;
  });

  // probabilities, qkv, dOut [B*T, W] -> dqkv [B*T, 3W].
  registerWasmKernel('MimirAttentionBackward', ({ runner, heap }, { inputs, attrs }) => {
    const { probabilities, qkv, dOut } = inputs as Record<'probabilities' | 'qkv' | 'dOut', tf.TensorInfo>;
    const g = attentionGeometry(qkv, attrs ?? {});
    const T = g.tokens;
    const out = heap.makeOutput([g.batch * T, 3 * g.width]);
    const [base, p, dO, dqkv] = [qkv, probabilities, dOut, out].map((t) => heap.pointerOf(t)) as [
      number,
      number,
      number,
      number,
    ];
    runner.run(
      perHead(g, (b, h) => {
        const row = b * T * g.ld + h * g.d;
        const [q, k, v] = [0, 1, 2].map((part) => base + 4 * (row + part * g.width)) as [number, number, number];
        const [gq, gk, gv] = [0, 1, 2].map((part) => dqkv + 4 * (row + part * g.width)) as [number, number, number];
        const pbh = p + 4 * (b * g.heads + h) * T * T;
        const dObh = dO + 4 * (b * T * g.width + h * g.d);
        return {
          fn: 'attention_backward_head',
          args: [pbh, q, k, v, dObh, g.width, gq, gk, gv, g.ld, T, g.d, g.scale, TEMP, SCRATCH],
        };
      }),
      T * T,
    );
    return out;
  });
}

interface AttentionGeometry {
  batch: number;
  tokens: number;
  heads: number;
  width: number;
  d: number;
  /** Leading dimension of qkv: 3 * width. */
  ld: number;
  scale: number;
}

/** Rows of a product per task (on several threads). */
const GEMM_BLOCK = 256;
/** Columns of kernels.c's micro-kernel: column blocks are multiples of it, so no panel is partial. */
const NR = 8;

/** Elements per task of an element-wise kernel. */
const ELEMENT_BLOCK = 1 << 16;

/** Rows per task of a row-wise kernel over rows of `cols` floats. */
function rowBlock(cols: number): number {
  return Math.max(1, Math.floor(ELEMENT_BLOCK / cols));
}

/** [start, count] blocks of `size` covering 0..total, at most MAX_TASKS of them. */
function blocks(total: number, size: number): [number, number][] {
  const step = Math.max(size, Math.ceil(total / MAX_TASKS), 1);
  const out: [number, number][] = [];
  for (let start = 0; start < total; start += step) out.push([start, Math.min(step, total - start)]);
  return out;
}

/** One task per (sample, head). */
function perHead(g: AttentionGeometry, task: (b: number, h: number) => Task): Task[] {
  if (g.batch * g.heads > MAX_TASKS) throw new Error(`attention: ${g.batch} x ${g.heads} heads is too many`);
  const tasks: Task[] = [];
  for (let b = 0; b < g.batch; b++) for (let h = 0; h < g.heads; h++) tasks.push(task(b, h));
  return tasks;
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
  return { batch, tokens, heads, width, d, ld: 3 * width, scale: 1 / Math.sqrt(d) };
}
