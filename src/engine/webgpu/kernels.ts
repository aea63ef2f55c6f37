import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { isRecord } from '@shared/unknown-value';
import { dims2, gemmShape } from '../kernels/kernel-args';
import { flashAttentionGradProgram, flashAttentionGroups, flashAttentionProgram } from './attention-programs';
import { jacobiEigenProgram } from './eigen-program';
import { accurateUnaryProgram, type AccurateUnary } from './unary-programs';
import {
  columnSumProgram,
  gemmProgram,
  geluProgram,
  layerNormGradProgram,
  layerNormProgram,
  softmaxGradProgram,
  softmaxProgram,
} from './programs';
import { kernelVariants } from './variants';

/**
 * The engine's WGSL kernels (programs.ts) registered as tfjs kernels of the "webgpu" backend under
 * the names of the wasm kernels (kernels/wasm-kernels.ts), so kernels/index.ts calls either the same
 * way. Each kernel only records GPU work: nothing is read back to the CPU.
 */

type Uniforms = { type: 'int32' | 'float32'; data: number[] }[];

interface ProgramRunner {
  runWebGPUProgram(
    program: WebGPUProgram,
    inputs: tf.TensorInfo[],
    dtype: 'float32',
    uniforms?: Uniforms,
  ): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

/** The shader keys of the engine's programs dispatched in this process, so a test or bench can tell which variant ran. */
const dispatched = new Set<string>();

export function dispatchedWebgpuShaders(): string[] {
  return [...dispatched];
}

export function clearDispatchedWebgpuShaders(): void {
  dispatched.clear();
}

function runnerOf(backend: unknown): ProgramRunner {
  if (
    !isRecord(backend) ||
    typeof backend.runWebGPUProgram !== 'function' ||
    typeof backend.disposeData !== 'function'
  ) {
    throw new Error('the engine WGSL kernels need the tfjs webgpu backend');
  }
  const runner = backend as unknown as ProgramRunner;
  return {
    runWebGPUProgram: (program, inputs, dtype, uniforms) => {
      dispatched.add(program.shaderKey);
      return runner.runWebGPUProgram(program, inputs, dtype, uniforms);
    },
    disposeData: (dataId) => runner.disposeData(dataId),
  };
}

function flag(attrs: tf.NamedAttrMap | undefined, name: string): boolean {
  const v = attrs?.[name];
  return v === true || v === 1;
}

const int = (...data: number[]) => ({ type: 'int32' as const, data });

/** True when the active backend is tfjs's webgpu, on which these kernels run. */
export function webgpuKernelsAvailable(): boolean {
  return tf.getBackend() === 'webgpu';
}

const registered = { done: false };

export function registerWebgpuKernels(): void {
  if (registered.done) return;
  registered.done = true;
  const register = (kernelName: string, kernelFunc: tf.KernelConfig['kernelFunc']) =>
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });

  register('MimirGemm', ({ inputs, backend, attrs }) => {
    const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
    const transA = flag(attrs, 'transposeA');
    const transB = flag(attrs, 'transposeB');
    const { m, n, k, aCols: ac, bCols: bc } = gemmShape(a, b, bias, transA, transB);
    if (attrs?.alpha !== undefined && attrs.alpha !== 1) throw new Error('gemm on webgpu: alpha must be 1');
    return runnerOf(backend).runWebGPUProgram(
      gemmProgram(m, n, {
        transA,
        transB,
        bias: bias !== undefined,
        vecA: ac % 4 === 0,
        vecB: bc % 4 === 0,
        f16: kernelVariants().gemmF16,
      }),
      bias ? [a, b, bias] : [a, b],
      'float32',
      [int(m), int(n), int(k)],
    );
  });

  register('MimirGelu', ({ inputs, backend }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    return runnerOf(backend).runWebGPUProgram(geluProgram(x.shape, false), [x], 'float32');
  });

  register('MimirGeluWithSlope', ({ inputs, backend }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const runner = runnerOf(backend);
    return [
      runner.runWebGPUProgram(geluProgram(x.shape, false), [x], 'float32'),
      runner.runWebGPUProgram(geluProgram(x.shape, true), [x], 'float32'),
    ];
  });

  register('MimirLayerNorm', ({ inputs, backend, attrs }) => {
    const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b: tf.TensorInfo };
    const [rows, cols] = dims2(x, 'x');
    const eps = attrs?.eps;
    if (typeof eps !== 'number') throw new Error('layerNorm: attribute eps missing');
    const runner = runnerOf(backend);
    const uniforms: Uniforms = [int(rows), int(cols), { type: 'float32', data: [eps] }];
    const { subgroups } = kernelVariants();
    return (['y', 'xhat', 'rstd'] as const).map((output) =>
      runner.runWebGPUProgram(
        layerNormProgram(rows, cols, output, subgroups),
        output === 'y' ? [x, w, b] : [x],
        'float32',
        uniforms,
      ),
    );
  });

  register('MimirLayerNormGrad', ({ inputs, backend }) => {
    const { dy, xhat, rstd, w } = inputs as Record<'dy' | 'xhat' | 'rstd' | 'w', tf.TensorInfo>;
    const [rows, cols] = dims2(dy, 'dy');
    return runnerOf(backend).runWebGPUProgram(
      layerNormGradProgram(rows, cols, kernelVariants().subgroups),
      [dy, xhat, rstd, w],
      'float32',
      [int(rows), int(cols)],
    );
  });

  register('MimirLayerNormParamGrads', ({ inputs, backend }) => {
    const { dy, xhat } = inputs as Record<'dy' | 'xhat', tf.TensorInfo>;
    const [rows, cols] = dims2(dy, 'dy');
    const runner = runnerOf(backend);
    return [
      runner.runWebGPUProgram(columnSumProgram(cols, true), [dy, xhat], 'float32', [int(rows), int(cols)]),
      runner.runWebGPUProgram(columnSumProgram(cols, false), [dy], 'float32', [int(rows), int(cols)]),
    ];
  });

  register('MimirSoftmax', ({ inputs, backend, attrs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const [rows, cols] = dims2(x, 'x');
    return runnerOf(backend).runWebGPUProgram(
      softmaxProgram(rows, cols, flag(attrs, 'log'), kernelVariants().subgroups),
      [x],
      'float32',
      [int(rows), int(cols)],
    );
  });

  register('MimirSoftmaxGrad', ({ inputs, backend, attrs }) => {
    const { dy, y } = inputs as Record<'dy' | 'y', tf.TensorInfo>;
    const [rows, cols] = dims2(y, 'y');
    const [dr, dc] = dims2(dy, 'dy');
    if (dr !== rows || dc !== cols) throw new Error(`softmax grad: dy [${dr}, ${dc}] must match y [${rows}, ${cols}]`);
    return runnerOf(backend).runWebGPUProgram(
      softmaxGradProgram(rows, cols, flag(attrs, 'log'), kernelVariants().subgroups),
      [dy, y],
      'float32',
      [int(rows), int(cols)],
    );
  });

  register('MimirColumnSums', ({ inputs, backend }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const [rows, cols] = dims2(x, 'x');
    return runnerOf(backend).runWebGPUProgram(columnSumProgram(cols, false), [x], 'float32', [int(rows), int(cols)]);
  });

  // Outputs: the eigenvalues [1, n], the eigenvectors as rows [n, n], the sweep count [1, 1]; copied
  // out of the program's packed output by tfjs's own Slice kernel, the packed buffer then released.
  register('MimirSymmetricEigen', ({ inputs, backend, attrs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const [n, cols] = dims2(x, 'x');
    if (n !== cols) throw new Error(`symmetric eigendecomposition: x must be square, got [${n}, ${cols}]`);
    const shift = attrs?.shift;
    if (typeof shift !== 'number') throw new Error('symmetric eigendecomposition: attribute shift missing');
    const runner = runnerOf(backend);
    const packed = runner.runWebGPUProgram(jacobiEigenProgram(n, flag(attrs, 'vectors')), [x], 'float32', [
      int(n),
      { type: 'float32', data: [shift] },
    ]);
    const slice = tf.getKernel('Slice', 'webgpu')?.kernelFunc;
    if (!slice) throw new Error('symmetric eigendecomposition: the webgpu backend has no Slice kernel');
    const rows = (begin: number, size: [number, number]) =>
      slice({ inputs: { x: packed }, backend, attrs: { begin: [begin, 0], size } }) as tf.TensorInfo;
    const outputs = [rows(n, [1, n]), rows(0, [n, n]), rows(2 * n + 1, [1, 1])];
    runner.disposeData(packed.dataId);
    return outputs;
  });

  register('MimirFlashAttention', ({ inputs, backend, attrs }) => {
    const { qkv } = inputs as { qkv: tf.TensorInfo };
    const g = flashGeometry(qkv, attrs);
    return runnerOf(backend).runWebGPUProgram(
      flashAttentionProgram(g.batch, g.tokens, g.heads, g.headDim),
      [qkv],
      'float32',
      flashUniforms(g),
    );
  });

  register('MimirFlashAttentionGrad', ({ inputs, backend, attrs }) => {
    const { qkv, packed, dOut } = inputs as Record<'qkv' | 'packed' | 'dOut', tf.TensorInfo>;
    const g = flashGeometry(qkv, attrs);
    const width = g.heads * g.headDim;
    const [pr, pc] = dims2(packed, 'packed');
    const [dr, dc] = dims2(dOut, 'dOut');
    if (pr !== g.rows || pc !== width + g.heads)
      throw new Error(`flash attention grad: packed must be [${g.rows}, ${width + g.heads}]`);
    if (dr !== g.rows || dc !== width) throw new Error(`flash attention grad: dOut must be [${g.rows}, ${width}]`);
    return runnerOf(backend).runWebGPUProgram(
      flashAttentionGradProgram(g.batch, g.tokens, g.heads, g.headDim),
      [qkv, packed, dOut],
      'float32',
      flashUniforms(g),
    );
  });
}

const ACCURATE_UNARY: Record<string, AccurateUnary> = { Expm1: 'expm1', Log1p: 'log1p', Log: 'log' };
const accurateUnary = { done: false };

/**
 * Replaces tfjs-backend-webgpu's Expm1, Log1p and Log kernels by accurate ones for float32
 * (unary-programs.ts); other dtypes still go to tfjs's. Called once tfjs-backend-webgpu has registered
 * its kernels (loading it later would register them again over these).
 */
export function useAccurateUnaryKernels(): void {
  if (accurateUnary.done) return;
  accurateUnary.done = true;
  for (const [kernelName, op] of Object.entries(ACCURATE_UNARY)) {
    const original = tf.getKernel(kernelName, 'webgpu');
    if (!original) throw new Error(`tfjs-backend-webgpu has no ${kernelName} kernel to replace`);
    tf.unregisterKernel(kernelName, 'webgpu');
    tf.registerKernel({
      kernelName,
      backendName: 'webgpu',
      kernelFunc: (args) => {
        const { x } = args.inputs as { x: tf.TensorInfo };
        if (x.dtype !== 'float32') return original.kernelFunc(args);
        return runnerOf(args.backend).runWebGPUProgram(accurateUnaryProgram(op, x.shape), [x], 'float32');
      },
    });
  }
}

interface FlashGeometry {
  batch: number;
  tokens: number;
  heads: number;
  headDim: number;
  rows: number;
}

function flashGeometry(qkv: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined): FlashGeometry {
  const [rows, width3] = dims2(qkv, 'qkv');
  const batch = attrs?.batch;
  const heads = attrs?.heads;
  if (typeof batch !== 'number' || typeof heads !== 'number' || batch < 1 || heads < 1) {
    throw new Error('flash attention: attributes batch and heads must be positive numbers');
  }
  if (rows % batch !== 0 || width3 % (3 * heads) !== 0) {
    throw new Error(`flash attention: qkv [${rows}, ${width3}] does not fit batch ${batch} and ${heads} heads`);
  }
  return { batch, tokens: rows / batch, heads, headDim: width3 / (3 * heads), rows };
}

function flashUniforms(g: FlashGeometry): Uniforms {
  return [
    int(g.tokens),
    int(g.heads),
    int(flashAttentionGroups(g.batch, g.tokens, g.heads, g.headDim)),
    { type: 'float32', data: [1 / Math.sqrt(g.headDim)] },
  ];
}
