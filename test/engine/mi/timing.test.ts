import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { invertInPlace, symmetricEigen } from '../../../src/engine/mi/linalg';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import { Rng } from '../../../src/engine/rng';
import { MI_ESTIMATORS } from '../../../src/shared/mi-config';
import { useBackend } from '../../helpers/backend';

/**
 * Timings of the MI estimators on wasm at the batch sizes of training, printed, not asserted
 * (the machine is shared). Opt-in, it takes a minute: MIMIR_BENCH=1 npx vitest run test/engine/mi/timing.test.ts
 * Sizes: A = x + delta of a 32x32x3 image (3072 values), B = z of ViT-T with 64 visible patches + cls
 * (65 x 192); and 64 features each.
 */
const bestOf = (reps: number, f: () => void): number => {
  f();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
};

describe.runIf(process.env.MIMIR_BENCH)('MI timings (wasm)', () => {
  it('forward and forward + gradient at N 128 and 256', async () => {
    await useBackend('wasm');
    const rng = new Rng(1);
    for (const n of [128, 256, 512]) {
      const m = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = rng.normal();
      const eig = bestOf(3, () => symmetricEigen(m, n, true));
      const values = bestOf(3, () => symmetricEigen(m, n, false));
      const inverse = bestOf(3, () => invertInPlace(Float64Array.from(m), n));
      console.log(
        `JS float64, N ${n}: eigen + vectors ${eig.toFixed(1)} ms, eigenvalues ${values.toFixed(1)} ms, inverse ${inverse.toFixed(1)} ms`,
      );
    }
    // Image/ViT-T sizes, where the kernels' matMuls dominate, and small features, where the JS linear algebra does.
    for (const [dA, dB] of [
      [3072, 65 * 192],
      [64, 64],
    ] as const) {
      for (const n of [128, 256]) {
        const a = tf.randomNormal([n, dA], 0, 1, 'float32', rng.seed());
        const b = tf.randomNormal([n, dB], 0, 1, 'float32', rng.seed());
        for (const estimator of MI_ESTIMATORS) {
          const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => mutualInformation(estimator, x, y));
          const forward = bestOf(3, () => tf.tidy(() => mutualInformation(estimator, a, b).dataSync()));
          const before = tf.memory().numTensors;
          const both = bestOf(3, () => tf.tidy(() => grads([a, b]).forEach((g) => g.dataSync())));
          expect(tf.memory().numTensors).toBe(before);
          console.log(
            `wasm N ${n}, dA ${dA}, dB ${dB}, ${estimator}: forward ${forward.toFixed(0)} ms, forward + gradient ${both.toFixed(0)} ms`,
          );
        }
        tf.dispose([a, b]);
      }
    }
  }, 600_000);
});
