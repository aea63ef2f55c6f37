import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BenchSettings,
  formatBenchReport,
  formatGemmTiming,
  kernelTotals,
  parseGemmSize,
  runBench,
  timeGemm,
} from '../../../src/engine/bench';
import { findPythonWithTorch } from '../../../src/engine/bench/torch-side';
import { useBackend } from '../../helpers/backend';

/**
 * The bench's code path on a micro configuration (not a timing test): both steps run, leave no
 * tensors behind, and the report has
 * every figure the issue asks for; the PyTorch side runs the same steps when python3-torch is there.
 */
const micro = {
  imageSize: 8,
  patchSize: 2,
  width: 16,
  depth: 1,
  heads: 2,
  decoderWidth: 8,
  decoderDepth: 1,
  decoderHeads: 2,
  batch: 4,
  pgdSteps: 2,
  warmup: 1,
  repeats: 3,
};

describe('mimir bench on a micro config', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('times both steps, keeps memory flat and reports every figure', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const report = await runBench(micro, { profile: true });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(report.backend).toBe('wasm');
    expect(report.steps.map((s) => s.name)).toEqual(['pretrain', 'pgdat']);
    for (const step of report.steps) {
      const t = step.tfjs;
      expect(t.steady).toHaveLength(3);
      expect(t.first.wallMs).toBeGreaterThan(0);
      expect(t.stepMs).toBeGreaterThan(0);
      expect(t.imagesPerSecond).toBeCloseTo((1000 * micro.batch) / t.stepMs, 6);
      expect(t.leakedTensors).toBe(0);
      expect(t.peakTensorMiB).toBeGreaterThan(0);
      expect(t.wasmHeapMiB).toBeGreaterThan(0);
      // Each step trains (new weights, new mask or attack start): finite losses that change.
      const losses = [t.first.loss, ...t.steady.map((s) => s.loss)];
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(new Set(losses).size).toBe(losses.length);
      const profile = t.profile;
      expect(profile).not.toBeNull();
      const kernels = kernelTotals(profile?.kernels ?? []).map((k) => k.kernel);
      // The engine's own products and attention (src/engine/kernels) run on wasm.
      expect(kernels).toContain('MimirGemm');
      expect(kernels).toContain('MimirAttentionBackward');
      expect(profile?.newTensors).toBe(0);
      expect(step.torch).toBeNull();
      expect(step.ratio).toBeNull();
    }
    const text = formatBenchReport(report);
    expect(text).toMatch(/MIMIR pre-training step \(pretrain\)/);
    expect(text).toMatch(/PGD-AT fine-tuning step \(pgdat\)/);
    expect(text).toMatch(/img\/s/);
  });

  it('times the engine GEMM in TFLOP/s and refuses a size that is not MxNxK', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const timing = await timeGemm(70, 50, 30, 2);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(timing).toMatchObject({ m: 70, n: 50, k: 30, backend: 'wasm', variant: null });
    expect(timing.tflops).toBeCloseTo((2 * 70 * 50 * 30) / (timing.msPerProduct * 1e9), 12);
    expect(formatGemmTiming(timing)).toMatch(/^GEMM 70x50x30 on wasm: [\d.]+ ms per product, [\d.]+ TFLOP\/s$/);
    expect(parseGemmSize(' 4096X384x1152 ')).toEqual([4096, 384, 1152]);
    expect(() => parseGemmSize('100x7')).toThrow('GEMM size "100x7" is not MxNxK with three positive integers');
    expect(() => parseGemmSize('0x7x3')).toThrow(/three positive integers/);
  });

  it('rejects settings that do not describe a model', () => {
    expect(BenchSettings.safeParse({ ...micro, steps: ['train'] }).success).toBe(false);
    expect(BenchSettings.safeParse({ ...micro, batch: 1 }).success).toBe(false);
  });

  const torch = findPythonWithTorch();
  it.skipIf(!torch.python)(
    'runs the same steps in PyTorch side by side and prints the ratio',
    async () => {
      const report = await runBench({ ...micro, repeats: 2 }, { compareTorch: true });
      expect(report.torch && 'info' in report.torch).toBe(true);
      if (report.torch && 'info' in report.torch) {
        expect(report.torch.info.threads).toBe(2);
        expect(report.torch.info.blas.libraries.length).toBeGreaterThan(0);
      }
      for (const step of report.steps) {
        expect(step.torch?.steady).toHaveLength(2);
        expect(step.torch?.stepMs).toBeGreaterThan(0);
        expect(step.ratio).toBeCloseTo(step.tfjs.stepMs / (step.torch?.stepMs ?? NaN), 9);
        const losses = [step.torch?.first.loss ?? NaN, ...(step.torch?.steady.map((s) => s.loss) ?? [])];
        expect(losses.every(Number.isFinite)).toBe(true);
      }
      expect(formatBenchReport(report)).toMatch(/ratio tfjs\/torch: \d+\.\d\d/);
    },
    120_000,
  );
});
