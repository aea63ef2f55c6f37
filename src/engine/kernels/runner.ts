import { Worker } from 'node:worker_threads';

/**
 * Runs a kernel call's independent tasks (row blocks of a product, (sample, head) pairs of attention)
 * on one thread, or on several threads when tfjs-wasm's memory is shared (its multi-threaded build).
 * A task is one call of an exported kernels.c function; SCRATCH and TEMP in its arguments stand for
 * the running thread's own gemm scratch and temporary buffer, so threads never share a buffer.
 *
 * The threads take tasks from one counter (compare-and-swap), so a helper that gets no CPU time
 * (a busy machine) leaves its share to the others instead of holding them up. The calling thread
 * takes tasks too and returns when all are done: kernels keep tfjs's synchronous semantics.
 */

export const KERNEL_FUNCTIONS = [
  'gemm',
  'gemm_packed',
  'pack_b_all',
  'attention_backward_head',
  'gelu_forward',
  'gelu_forward_slope',
  'layer_norm_forward',
  'layer_norm_backward',
  'layer_norm_param_grads',
  'column_sums',
  'attention_probabilities_head',
] as const;
export type KernelFunction = (typeof KERNEL_FUNCTIONS)[number];

/** Argument placeholders: the running thread's gemm scratch, and its temporary buffer. */
export const SCRATCH = -1;
export const TEMP = -2;

export interface Task {
  fn: KernelFunction;
  args: number[];
}

type KernelFn = (...args: number[]) => void;

export interface KernelRunner {
  readonly threads: number;
  /** Runs every task; `tempFloats`: size of each thread's TEMP buffer for this call. */
  run(tasks: Task[], tempFloats?: number): void;
}

export interface WasmHeapAlloc {
  malloc(bytes: number): number;
  free(pointer: number): void;
}

function substitute(args: number[], scratch: number, temp: number): number[] {
  return args.map((a) => (a === SCRATCH ? scratch : a === TEMP ? temp : a));
}

function functionsOf(exports: Record<string, unknown>): Record<KernelFunction, KernelFn> {
  const table = {} as Record<KernelFunction, KernelFn>;
  for (const name of KERNEL_FUNCTIONS) {
    const fn = exports[name];
    if (typeof fn !== 'function') throw new Error(`kernels wasm lacks ${name}`);
    table[name] = fn as KernelFn;
  }
  return table;
}

export class SingleThreadRunner implements KernelRunner {
  readonly threads = 1;
  private readonly fns: Record<KernelFunction, KernelFn>;

  constructor(
    exports: Record<string, unknown>,
    private readonly heap: WasmHeapAlloc,
    private readonly scratch: number,
  ) {
    this.fns = functionsOf(exports);
  }

  run(tasks: Task[], tempFloats = 0): void {
    const temp = tempFloats > 0 ? this.heap.malloc(4 * tempFloats) : 0;
    try {
      for (const task of tasks) this.fns[task.fn](...substitute(task.args, this.scratch, temp));
    } finally {
      if (temp) this.heap.free(temp);
    }
  }
}

// Control words (Int32) at the start of the shared control buffer.
const SEQ = 0; // bumped once per call; helpers sleep on it
const CLAIM = 1; // (generation << 16) | next task index
const DONE = 2; // tasks finished in this call
const TOTAL = 3; // tasks in this call
const THREAD_BUFFERS = 8; // then (scratch, temp) pointers per thread
const CONTROL_WORDS = 64;
const ARGS_PER_TASK = 17; // function index + 16 arguments
/** Most tasks one call may have (callers size their blocks to stay under it). */
export const MAX_TASKS = 8192;

/** The helper thread: its own instance of the kernels on the shared memory, taking tasks until told to stop. */
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, names, index } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const fns = names.map((name) => exports[name]);
const ctl = new Int32Array(control, 0, ${CONTROL_WORDS});
const table = new Float64Array(control, ${CONTROL_WORDS} * 4);
const args = new Array(16);
let seen = Atomics.load(ctl, ${SEQ});
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  seen = Atomics.load(ctl, ${SEQ});
  if (seen < 0) break;
  const claim = Atomics.load(ctl, ${CLAIM});
  const generation = claim >>> 16;
  const scratch = ctl[${THREAD_BUFFERS} + 2 * index] >>> 0;
  const temp = ctl[${THREAD_BUFFERS} + 2 * index + 1] >>> 0;
  for (;;) {
    const c = Atomics.load(ctl, ${CLAIM});
    if (c >>> 16 !== generation) break;
    const i = c & 0xffff;
    if (i >= Atomics.load(ctl, ${TOTAL})) break;
    if (Atomics.compareExchange(ctl, ${CLAIM}, c, c + 1) !== c) continue;
    const base = i * ${ARGS_PER_TASK};
    for (let a = 0; a < 16; a++) {
      const v = table[base + 1 + a];
      args[a] = v === ${SCRATCH} ? scratch : v === ${TEMP} ? temp : v;
    }
    fns[table[base]](...args);
    Atomics.add(ctl, ${DONE}, 1);
    Atomics.notify(ctl, ${DONE});
  }
}
`;

export class ThreadPoolRunner implements KernelRunner {
  readonly threads: number;
  private readonly fns: Record<KernelFunction, KernelFn>;
  private readonly ctl: Int32Array;
  private readonly table: Float64Array;
  private readonly helpers: Worker[];
  private readonly scratches: number[];
  /** Runs calls of one task here, without waking the helpers. */
  private readonly single: SingleThreadRunner;
  private generation = 0;

  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    exports: Record<string, unknown>,
    private readonly heap: WasmHeapAlloc,
    scratches: number[],
  ) {
    this.fns = functionsOf(exports);
    this.threads = scratches.length;
    this.scratches = scratches;
    this.single = new SingleThreadRunner(exports, heap, scratches[0] ?? 0);
    const control = new SharedArrayBuffer(CONTROL_WORDS * 4 + MAX_TASKS * ARGS_PER_TASK * 8);
    this.ctl = new Int32Array(control, 0, CONTROL_WORDS);
    this.table = new Float64Array(control, CONTROL_WORDS * 4);
    this.helpers = scratches.slice(1).map((_, i) => {
      const worker = new Worker(HELPER_SOURCE, {
        eval: true,
        workerData: { module, memory, control, names: KERNEL_FUNCTIONS, index: i + 1 },
      });
      worker.unref();
      return worker;
    });
  }

  run(tasks: Task[], tempFloats = 0): void {
    if (tasks.length === 0) return;
    if (tasks.length > MAX_TASKS) throw new Error(`kernel runner: ${tasks.length} tasks (at most ${MAX_TASKS})`);
    if (tasks.length === 1) return this.single.run(tasks, tempFloats);
    const temps = this.scratches.map(() => (tempFloats > 0 ? this.heap.malloc(4 * tempFloats) : 0));
    try {
      tasks.forEach((task, i) => {
        const base = i * ARGS_PER_TASK;
        this.table[base] = KERNEL_FUNCTIONS.indexOf(task.fn);
        this.table.fill(0, base + 1, base + ARGS_PER_TASK);
        this.table.set(task.args, base + 1);
      });
      this.scratches.forEach((scratch, t) => {
        this.ctl[THREAD_BUFFERS + 2 * t] = scratch;
        this.ctl[THREAD_BUFFERS + 2 * t + 1] = temps[t] ?? 0;
      });
      this.generation = (this.generation + 1) & 0x7fff;
      Atomics.store(this.ctl, TOTAL, tasks.length);
      Atomics.store(this.ctl, DONE, 0);
      Atomics.store(this.ctl, CLAIM, this.generation << 16);
      Atomics.store(this.ctl, SEQ, (Atomics.load(this.ctl, SEQ) + 1) & 0x3fffffff);
      Atomics.notify(this.ctl, SEQ);
      this.work(temps[0] ?? 0, tasks);
      for (;;) {
        const done = Atomics.load(this.ctl, DONE);
        if (done >= tasks.length) break;
        Atomics.wait(this.ctl, DONE, done);
      }
    } finally {
      for (const temp of temps) if (temp) this.heap.free(temp);
    }
  }

  private work(temp: number, tasks: Task[]): void {
    const scratch = this.scratches[0] ?? 0;
    for (;;) {
      const c = Atomics.load(this.ctl, CLAIM);
      const i = c & 0xffff;
      if (i >= tasks.length) return;
      if (Atomics.compareExchange(this.ctl, CLAIM, c, c + 1) !== c) continue;
      const task = tasks[i];
      if (task) this.fns[task.fn](...substitute(task.args, scratch, temp));
      Atomics.add(this.ctl, DONE, 1);
    }
  }

  /** Stops the helper threads (they never keep the process alive either way). */
  close(): void {
    Atomics.store(this.ctl, SEQ, -1);
    Atomics.notify(this.ctl, SEQ);
    for (const helper of this.helpers) void helper.terminate();
  }
}
