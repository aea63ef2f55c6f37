import * as tf from '@tensorflow/tfjs-core';
import { webgpuKernelsAvailable } from '../webgpu/kernels';
import { asSave, savedAt, type GradSave } from './grad-save';

/**
 * Softmax over the last axis. On webgpu: the engine's row kernel (webgpu/programs.ts), one program
 * forward and one backward, y (dy - sum(dy y)). Elsewhere tfjs's tf.softmax, unchanged.
 */
export function softmaxRows<T extends tf.Tensor>(x: T): T {
  return webgpuKernelsAvailable() ? (rowKernel.softmax(x) as T) : tf.softmax(x);
}

/** Log-softmax over the last axis: on webgpu the engine's row kernel, backward dy - exp(y) sum(dy); elsewhere tf.logSoftmax. */
export function logSoftmaxRows<T extends tf.Tensor>(x: T): T {
  return webgpuKernelsAvailable() ? (rowKernel.logSoftmax(x) as T) : tf.logSoftmax(x);
}

function rowKernelOp(log: boolean) {
  return tf.customGrad((xIn: tf.Tensor | GradSave, saveIn: tf.Tensor | GradSave) => {
    if (!(xIn instanceof tf.Tensor)) throw new Error('expected a tensor');
    const shape = xIn.shape;
    const cols = shape[shape.length - 1];
    if (cols === undefined) throw new Error(`${log ? 'log-softmax' : 'softmax'} needs at least one axis: got a scalar`);
    const y = tf.engine().runKernel('MimirSoftmax', { x: tf.reshape(xIn, [-1, cols]) }, { log }) as tf.Tensor;
    asSave(saveIn)([y]);
    return {
      value: tf.reshape(y, shape),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.reshape(
          tf
            .engine()
            .runKernel(
              'MimirSoftmaxGrad',
              { dy: tf.reshape(dy, [-1, cols]), y: savedAt(saved, 0) },
              { log },
            ) as tf.Tensor,
          shape,
        ),
    };
  });
}

const rowKernel = { softmax: rowKernelOp(false), logSoftmax: rowKernelOp(true) };
