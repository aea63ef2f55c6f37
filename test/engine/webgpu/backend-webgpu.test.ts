import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { selectBackend } from '../../../src/engine/backend';
import { finetuneStep } from '../../../src/engine/finetune';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import { disposeParams, initClassifierParams } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { builtinBatch, disposeBatch, microRun, relativeError } from '../finetune/helpers';
import { useSwiftShader } from './swiftshader';

const MODEL = modelConfigFromPreset('micro', 16);

/** One PGD-AT step (2 attack steps) of the micro classifier on 4 images, read asynchronously. */
async function pgdAtStep(): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const run = microRun('pgd-at', { attack: { steps: 2 } });
  const params = initClassifierParams(MODEL, 10, new Rng(3), { headInitStd: run.headInitStd });
  const batch = builtinBatch(4);
  try {
    const result = await finetuneStep(
      { params, modelConfig: MODEL, run, numClasses: 10, epoch: 0, rng: new Rng(5) },
      batch,
    );
    const grads = new Map<string, Float32Array>();
    for (const [name, g] of result.grads) grads.set(name, Float32Array.from(await g.data()));
    const loss = (await result.loss.data())[0] ?? NaN;
    result.dispose();
    return { loss, grads };
  } finally {
    disposeBatch(batch);
    disposeParams(params);
  }
}

describe('the webgpu backend on SwiftShader (a CPU adapter)', () => {
  beforeAll(() => useSwiftShader());

  it('is passed over when not forced, with the adapter and the reason in the report', async () => {
    const report = await selectBackend(null, 'cli');
    expect(report.webgpu.status).toBe('cpu-adapter');
    expect(report.webgpu.adapter).toMatchObject({ vendor: 'google', architecture: 'swiftshader' });
    expect(report.webgpu.adapter?.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    const candidate = report.candidates.find((c) => c.backend === 'webgpu');
    expect(candidate).toMatchObject({ module: '@tensorflow/tfjs-backend-webgpu', available: false });
    expect(candidate?.reason).toMatch(/^passed over: CPU adapter google swiftshader .*used only when forced/);
    expect(report.chosen).not.toBe('webgpu');
    // Order of preference: tensorflow, webgpu, wasm, cpu.
    expect(report.candidates.map((c) => c.backend)).toEqual(['tensorflow', 'tensorflow', 'webgpu', 'wasm', 'cpu']);
  });

  it('runs a micro PGD-AT step when forced, agreeing with wasm', async () => {
    const report = await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(report.candidates.find((c) => c.backend === 'webgpu')?.reason).toMatch(/forced onto the CPU adapter/);
    const gpu = await pgdAtStep();

    await selectBackend({ backend: 'wasm', forcedBy: 'env' }, 'cli');
    const wasm = await pgdAtStep();
    const worst = Math.max(...[...wasm.grads].map(([name, g]) => relativeError(gpu.grads.get(name) ?? [], g)));
    console.log(
      `PGD-AT micro step: loss webgpu ${gpu.loss}, wasm ${wasm.loss}; worst gradient relative error ${worst.toExponential(2)}`,
    );
    expect(Number.isFinite(gpu.loss)).toBe(true);
    expect(Math.abs(gpu.loss - wasm.loss) / Math.abs(wasm.loss)).toBeLessThan(1e-3);
    expect([...gpu.grads.keys()]).toEqual([...wasm.grads.keys()]);
    for (const [name, g] of wasm.grads) {
      expect(relativeError(gpu.grads.get(name) ?? [], g), name).toBeLessThan(1e-3);
    }
  }, 300_000);

  it('computes HSIC and the Renyi MI on webgpu with no synchronous read, Renyi as on the cpu backend', async () => {
    await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    const rng = new Rng(9);
    const a = Float32Array.from({ length: 8 * 6 }, () => rng.uniform());
    const b = Float32Array.from({ length: 8 * 4 }, () => rng.uniform());
    const estimate = (estimator: 'hsic' | 'renyi'): tf.Scalar =>
      tf.tidy(() => mutualInformation(estimator, tf.tensor2d(a, [8, 6]), tf.tensor2d(b, [8, 4])));
    const hsic = estimate('hsic');
    const renyi = estimate('renyi');
    const [hsicValue, renyiValue] = await Promise.all([hsic, renyi].map(async (t) => (await t.data())[0] ?? NaN));
    tf.dispose([hsic, renyi]);
    expect(Number.isFinite(hsicValue) && (hsicValue ?? 0) > 0).toBe(true);
    await selectBackend({ backend: 'cpu', forcedBy: 'env' }, 'cli');
    const cpu = estimate('renyi');
    const want = cpu.dataSync()[0] ?? NaN;
    cpu.dispose();
    console.log(`Renyi MI: webgpu ${renyiValue}, cpu (float64 eigendecomposition) ${want}`);
    expect(want).toBeGreaterThan(0);
    expect(Math.abs((renyiValue ?? NaN) - want) / want).toBeLessThan(1e-4);
  }, 120_000);
});
