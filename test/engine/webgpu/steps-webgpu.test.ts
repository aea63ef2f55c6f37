import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { BenchSettings, benchStep, type BenchStepName } from '../../../src/engine/bench';
import { takeWebgpuDeviceErrors } from '../../../src/engine/webgpu/adapter';
import { useSwiftShader } from './swiftshader';

/** A micro MIMIR model (HSIC penalty, visible-patch attack) and PGD-AT with 2 attack steps. */
const MICRO = BenchSettings.parse({
  imageSize: 8,
  patchSize: 2,
  width: 16,
  depth: 2,
  heads: 2,
  decoderWidth: 8,
  decoderDepth: 1,
  decoderHeads: 2,
  batch: 4,
  pgdSteps: 2,
  miLambda: 1e-2,
});

/** Three training steps (AdamW applied after each) from the same seed: the losses, the weights and their updates. */
async function threeSteps(
  name: BenchStepName,
  settings: BenchSettings = MICRO,
): Promise<{ losses: number[]; weights: Map<string, Float64Array>; updates: Map<string, Float64Array> }> {
  const step = benchStep(name, settings);
  try {
    const start = new Map<string, Float32Array>();
    for (const [key, v] of step.params) start.set(key, Float32Array.from(await v.data()));
    const losses = [await step.run(), await step.run(), await step.run()];
    const weights = new Map<string, Float64Array>();
    const updates = new Map<string, Float64Array>();
    for (const [key, v] of step.params) {
      const before = start.get(key) ?? new Float32Array();
      const after = Float64Array.from(await v.data());
      weights.set(key, after);
      updates.set(
        key,
        after.map((w, i) => w - (before[i] ?? NaN)),
      );
    }
    return { losses, weights, updates };
  } finally {
    await step.dispose();
  }
}

/**
 * ||a - b|| / ||b|| over all parameters together. Per coordinate the comparison is ill-posed: AdamW
 * moves a coordinate whose gradient is near zero by about lr whatever the gradient's size, so float32
 * noise in a vanishing gradient (a bias of a barely used unit) can flip that coordinate's step. Even
 * tfjs's cpu and wasm backends differ by a few 1e-3 here after 3 steps (4.2e-3 on the PGD-AT step).
 */
function updateError(a: Map<string, Float64Array>, b: Map<string, Float64Array>): number {
  let diff = 0;
  let norm = 0;
  for (const [key, want] of b) {
    const got = a.get(key);
    if (!got || got.length !== want.length) throw new Error(`parameter ${key} differs in shape`);
    for (let i = 0; i < want.length; i++) {
      diff += ((got[i] ?? NaN) - (want[i] ?? 0)) ** 2;
      norm += (want[i] ?? 0) ** 2;
    }
  }
  return Math.sqrt(diff / norm);
}

describe('the first 3 training steps on webgpu (SwiftShader) agree with wasm', () => {
  beforeAll(() => useSwiftShader());

  // nHSIC is the pre-training default; its penalty is about lambda * 20 here, a tenth of the loss.
  it.each([
    { name: 'pretrain', label: 'pretrain (HSIC penalty)', settings: MICRO },
    {
      name: 'pretrain',
      label: 'pretrain (nHSIC penalty)',
      settings: BenchSettings.parse({ ...MICRO, miEstimator: 'nhsic' }),
    },
    // Renyi's eigendecompositions (3 per step) run on the device there, in float64 on the CPU on wasm. Its
    // MI is a few bits here: lambda 0.3 makes the penalty a sizeable part of the loss and of its gradient.
    {
      name: 'pretrain',
      label: 'pretrain (Renyi penalty)',
      settings: BenchSettings.parse({ ...MICRO, miEstimator: 'renyi', miLambda: 0.1, miSigma: 0.5 }),
    },
    { name: 'pgdat', label: 'pgdat', settings: MICRO },
  ] as const)(
    '$label: losses and weights within 1e-3 relative',
    async ({ name, settings }) => {
      await selectBackend({ backend: 'wasm', forcedBy: 'env' }, 'cli');
      const wasm = await threeSteps(name, settings);
      expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
      const gpu = await threeSteps(name, settings);
      expect(takeWebgpuDeviceErrors()).toEqual([]);
      console.log(`${name}: losses webgpu ${gpu.losses.join(', ')}; wasm ${wasm.losses.join(', ')}`);
      expect(new Set(wasm.losses).size).toBe(3); // the steps train
      wasm.losses.forEach((loss, i) =>
        expect(Math.abs((gpu.losses[i] ?? NaN) - loss) / Math.abs(loss)).toBeLessThan(1e-3),
      );
      // The weights after 3 AdamW steps, relative to their size, within 1e-3 (the bound); their
      // updates w3 - w0 within 1e-2: an order above the cpu backend's own distance from wasm.
      await selectBackend({ backend: 'cpu', forcedBy: 'env' }, 'cli');
      const cpu = await threeSteps(name, settings);
      const weights = updateError(gpu.weights, wasm.weights);
      const error = updateError(gpu.updates, wasm.updates);
      const baseline = updateError(cpu.updates, wasm.updates);
      console.log(
        `${name}: after 3 steps, weights relative error ${weights.toExponential(2)}; updates webgpu-wasm ${error.toExponential(2)}, cpu-wasm ${baseline.toExponential(2)}`,
      );
      expect(weights).toBeLessThan(1e-3);
      expect(error).toBeLessThan(1e-2);
    },
    600_000,
  );
});
