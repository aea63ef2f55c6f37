import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { FINETUNE_METHODS, type FinetuneConfigInput, type FinetuneMethod } from '../../../src/shared/finetune-config';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { pgd } from '../../../src/engine/attacks';
import {
  GeneralistTrainer,
  ascend,
  crossEntropyObjective,
  evalClassifier,
  finetuneStep,
  type StepResult,
} from '../../../src/engine/finetune';
import { disposeParams, initClassifierParams } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { builtinBatch, disposeBatch, microRun, relativeError } from './helpers';

const N = 8;
const MODEL = modelConfigFromPreset('micro', 16);
/** Parameters of the micro classifier: 3 + 12 per block + fc_norm and head. */
const PARAM_COUNT = 3 + 12 * MODEL.depth + 4;

interface StepValues {
  loss: number;
  clean: number;
  adv: number | null;
  grads: Map<string, Float32Array>;
}

async function read(result: StepResult): Promise<StepValues> {
  const grads = new Map<string, Float32Array>();
  for (const [name, g] of result.grads) grads.set(name, Float32Array.from(await g.data()));
  const values = {
    loss: (await result.loss.data())[0] ?? NaN,
    clean: (await result.cleanCorrect.data())[0] ?? NaN,
    adv: result.advCorrect ? ((await result.advCorrect.data())[0] ?? NaN) : null,
    grads,
  };
  result.dispose();
  return values;
}

/** One step of `method` from a fixed initialisation and batch on the active backend. */
async function oneStep(
  method: FinetuneMethod,
  attackSteps: number,
  overrides: Partial<FinetuneConfigInput> = {},
): Promise<StepValues> {
  const run = microRun(method, { attack: { steps: attackSteps }, apgdAt: { steps: attackSteps }, ...overrides });
  const outputs = method === 'dbat' ? 20 : 10;
  const params = initClassifierParams(MODEL, outputs, new Rng(3), { headInitStd: run.headInitStd });
  const batch = builtinBatch(N);
  try {
    return await read(
      await finetuneStep({ params, modelConfig: MODEL, run, numClasses: 10, epoch: 0, rng: new Rng(5) }, batch),
    );
  } finally {
    disposeBatch(batch);
    disposeParams(params);
  }
}

describe('one step of every method', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: every method takes a step with finite loss and gradients, leaving no tensors behind`, async () => {
      await useBackend(backend);
      for (const method of FINETUNE_METHODS) {
        if (method === 'generalist') continue;
        const before = tf.memory().numTensors;
        const values = await oneStep(method, 2);
        expect(tf.memory().numTensors, `${method} leaked`).toBe(before);
        expect(Number.isFinite(values.loss), `${method} loss ${values.loss}`).toBe(true);
        expect(values.grads.size).toBe(PARAM_COUNT);
        for (const [name, g] of values.grads) expect(g.every(Number.isFinite), `${method} ${name}`).toBe(true);
        expect(values.clean).toBeGreaterThanOrEqual(0);
        expect(values.clean).toBeLessThanOrEqual(N);
        expect(values.adv === null).toBe(method === 'natural');
      }
      // Generalist: both learners step, the global model moves, nothing leaks.
      const before = tf.memory().numTensors;
      const run = microRun('generalist', { attack: { steps: 2 }, generalist: { syncStart: 0, syncEvery: 1 } });
      const global = initClassifierParams(MODEL, 10, new Rng(3), { headInitStd: 0.02 });
      const start = Float32Array.from(await (global.get('head.weight') ?? tf.scalar(0)).data());
      const trainer = new GeneralistTrainer(global, MODEL, run);
      const batch = builtinBatch(N);
      const result = trainer.step(batch, {
        lr: 1e-3,
        epoch: 0,
        batchIndex: 0,
        stepsPerEpoch: 1,
        updatesBefore: 0,
        rng: new Rng(1),
      });
      expect(Number.isFinite((await result.loss.data())[0] ?? NaN)).toBe(true);
      expect(result.synced).toBe(true);
      result.dispose();
      const moved = Float32Array.from(await (global.get('head.weight') ?? tf.scalar(0)).data());
      expect(relativeError(moved, start)).toBeGreaterThan(0);
      // Synced: both learners now hold the global weights.
      const natural = await (trainer.natural.get('head.weight') ?? tf.scalar(0)).data();
      expect(Array.from(natural)).toEqual(Array.from(moved));
      trainer.dispose();
      disposeBatch(batch);
      disposeParams(global);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('pgd-at: cpu and wasm agree on the first step (adversarial examples, loss, accuracy, every gradient)', async () => {
    const adversarial = async () => {
      const params = initClassifierParams(MODEL, 10, new Rng(3), { headInitStd: 0.02 });
      const batch = builtinBatch(N);
      const x = ascend(evalClassifier(params, MODEL), batch.images, crossEntropyObjective(batch.targets), {
        threat: 'linf',
        eps: 8 / 255,
        alpha: 2 / 255,
        steps: 10,
        start: 'uniform',
        seed: 1,
        ids: batch.ids,
      });
      const values = Float32Array.from(await x.data());
      tf.dispose(x);
      disposeBatch(batch);
      disposeParams(params);
      return values;
    };
    await useBackend('cpu');
    const cpu = await oneStep('pgd-at', 10);
    const cpuAdv = await adversarial();
    await useBackend('wasm');
    const wasm = await oneStep('pgd-at', 10);
    const wasmAdv = await adversarial();
    // A signed step turns float32 rounding into a full step where a pixel's gradient is ~0, so a
    // handful of pixels may differ by one or two steps; everything else must match.
    let differing = 0;
    let largest = 0;
    cpuAdv.forEach((v, i) => {
      const d = Math.abs(v - (wasmAdv[i] ?? NaN));
      if (d > 1e-6) differing++;
      largest = Math.max(largest, d);
    });
    expect(differing / cpuAdv.length).toBeLessThan(0.005);
    expect(largest).toBeLessThanOrEqual((4 / 255) * 1.0001);
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-5 * Math.abs(cpu.loss));
    expect(wasm.clean).toBe(cpu.clean);
    expect(wasm.adv).toBe(cpu.adv);
    let worst = 0;
    let worstName = '';
    for (const [name, g] of cpu.grads) {
      const e = relativeError(wasm.grads.get(name) ?? [], g);
      if (e > worst) [worst, worstName] = [e, name];
    }
    console.log(
      `pgd-at first step, cpu vs wasm: ${differing} of ${cpuAdv.length} adversarial pixel values differ (largest ${(largest * 255).toFixed(2)}/255); ` +
        `loss ${cpu.loss.toFixed(7)} vs ${wasm.loss.toFixed(7)}; worst relative gradient difference ${worst.toExponential(2)} (${worstName})`,
    );
    expect(worst).toBeLessThan(2e-3);
  });

  it("the training adversary with a uniform start is the attack library's PGD (keep: last) for the same seed and ids", async () => {
    await useBackend('cpu');
    const params = initClassifierParams(MODEL, 10, new Rng(3), { headInitStd: 0.02 });
    const batch = builtinBatch(N, 10, 40);
    const model = evalClassifier(params, MODEL);
    const options = { threat: 'linf' as const, eps: 8 / 255, alpha: 2 / 255, steps: 5, seed: 11, ids: batch.ids };
    const mine = ascend(model, batch.images, crossEntropyObjective(batch.targets), { ...options, start: 'uniform' });
    const library = await pgd(model, batch.images, batch.labelValues, { ...options, randomStart: true, keep: 'last' });
    expect(Array.from(await mine.data())).toEqual(Array.from(await library.xAdv.data()));
    const delta = tf.max(tf.abs(tf.sub(mine, batch.images)));
    expect((await delta.data())[0]).toBeLessThanOrEqual(8 / 255 + 1e-6);
    tf.dispose([mine, library.xAdv, delta]);
    disposeBatch(batch);
    disposeParams(params);
  });

  it("dbat: label smoothing 0.5 unless set (its authors' code), not the run's 0.1; other methods keep the run's", async () => {
    await useBackend('wasm');
    // Same seed, same adversarial examples: the smoothed CE is affine in the smoothing s, so
    // L(0.5) = L(0) + 2 (L(0.25) - L(0)) tells which s the default applies.
    const loss = async (method: FinetuneMethod, overrides: Partial<FinetuneConfigInput>) =>
      (await oneStep(method, 1, overrides)).loss;
    const at0 = await loss('dbat', { dbat: { labelSmoothing: 0 } });
    const at025 = await loss('dbat', { dbat: { labelSmoothing: 0.25 } });
    const byDefault = await loss('dbat', {});
    expect(Math.abs(byDefault - (at0 + 2 * (at025 - at0)))).toBeLessThan(1e-5 * Math.abs(byDefault));
    const runs = await loss('dbat', { dbat: { labelSmoothing: null } }); // null: the run's labelSmoothing, 0.1
    expect(Math.abs(runs - (at0 + 0.4 * (at025 - at0)))).toBeLessThan(1e-5 * Math.abs(runs));
    expect(Math.abs(byDefault - runs)).toBeGreaterThan(1e-3);
    // PGD-AT ignores DBAT's setting.
    expect(await loss('pgd-at', { dbat: { labelSmoothing: 0 } })).toBe(await loss('pgd-at', {}));
  });
});
