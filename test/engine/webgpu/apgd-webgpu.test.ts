import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { apgdHighestLoss } from '../../../src/engine/attacks/apgd';
import { perExampleNorm } from '../../../src/engine/attacks/geometry';
import type { ThreatModel } from '../../../src/engine/attacks/types';
import { selectBackend } from '../../../src/engine/backend';
import { Rng } from '../../../src/engine/rng';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { mlp, randomImages } from '../attacks/models';
import { spyBackendReads } from '../../helpers/step-reads';
import { useSwiftShader } from './swiftshader';

const N = 12;
const ITERATIONS = 10;

/** APGD-AT's attack on a seeded MLP (labels from a second stream: some examples start misclassified). */
async function attack(
  threat: ThreatModel,
  eps: number,
): Promise<{ points: Float32Array; moved: number; reads: number }> {
  const net = mlp(3, 48, 32, 10);
  const rng = new Rng(11);
  const { x } = randomImages(rng, N, 4, 4, 3);
  const labels = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * 10));
  let reads = 0;
  spyBackendReads(() => reads++);
  const xAdv = await apgdHighestLoss(net.model, x, labels, { threat, eps, iterations: ITERATIONS });
  const counted = reads;
  vi.restoreAllMocks();
  const points = Float32Array.from(await xAdv.data());
  // The largest perturbation's norm in the threat model.
  const norm = tf.tidy(() => tf.max(perExampleNorm(tf.sub(xAdv, x), threat)));
  const moved = (await norm.data())[0] ?? NaN;
  norm.dispose();
  tf.dispose([xAdv, x]);
  net.dispose();
  return { points, moved, reads: counted };
}

/**
 * APGD-AT's attack on webgpu (SwiftShader): every iteration's bookkeeping (step sizes, best points,
 * checkpoint restarts) stays on the device, so the attack reads nothing back (every read of the backend
 * counted, kernels' own included), and its points agree with wasm's.
 */
describe('APGD-AT on webgpu (SwiftShader)', () => {
  beforeAll(() => useSwiftShader());
  afterEach(() => vi.restoreAllMocks());

  // 10 iterations: AutoAttack's checkpoints fall after iterations 1 to 9, so steps halve and restart.
  it.each([
    { threat: 'l2' as const, eps: 0.5 },
    { threat: 'linf' as const, eps: 0.03 },
  ])(
    '$threat: no read inside the attack; the points within 1e-3 eps of wasm',
    async ({ threat, eps }) => {
      await selectBackend({ backend: 'wasm', forcedBy: 'env' }, 'cli');
      const wasm = await attack(threat, eps);
      expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
      const gpu = await attack(threat, eps);
      expect(takeWebgpuDeviceErrors()).toEqual([]);
      expect(gpu.reads).toBe(0);
      let worst = 0;
      wasm.points.forEach((v, i) => (worst = Math.max(worst, Math.abs((gpu.points[i] ?? NaN) - v))));
      console.log(`${threat}: APGD-AT points, largest |webgpu - wasm| ${worst.toExponential(2)}`);
      expect(wasm.moved).toBeGreaterThan(eps / 2); // the attack moved the points
      expect(worst).toBeLessThan(1e-3 * eps);
    },
    300_000,
  );
});
