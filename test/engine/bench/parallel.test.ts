import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { BenchSettings } from '../../../src/engine/bench';
import { parallelBenchStep } from '../../../src/engine/bench/parallel/steps';
import { benchStep } from '../../../src/engine/bench/steps';
import { useBackend } from '../../helpers/backend';

/**
 * The batch split across two threads (here both halves run in this thread) must be the same step as
 * the engine's single-thread one: same losses and the same gradients over two steps, up to float32
 * summation order. The HSIC term couples the samples, so this checks the two-phase split of
 * the MIMIR step (dMI/dz from the whole batch) as well as the PGD-AT split.
 */
const settings = BenchSettings.parse({
  imageSize: 8,
  patchSize: 2,
  width: 16,
  depth: 1,
  heads: 2,
  decoderWidth: 8,
  decoderDepth: 1,
  decoderHeads: 2,
  batch: 6,
  pgdSteps: 2,
  miLambda: 5000, // so large that the MI term's share of the gradients is a few per cent: a wrong dMI/dz shows
});

describe('bench steps split across two threads', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  for (const name of ['pretrain', 'pgdat'] as const) {
    it(`${name}: equals the single-thread step`, async () => {
      const record = (into: Map<string, Float32Array>[]) => (grads: Map<string, tf.Tensor>) => {
        into.push(new Map([...grads].map(([k, g]) => [k, Float32Array.from(g.dataSync())])));
      };
      const serialGrads: Map<string, Float32Array>[] = [];
      const splitGrads: Map<string, Float32Array>[] = [];
      const serial = benchStep(name, settings, record(serialGrads));
      const split = await parallelBenchStep(name, settings, { inProcess: true, tap: record(splitGrads) });
      for (let i = 0; i < 2; i++) {
        const a = await serial.run();
        const b = await split.run();
        expect(Math.abs(a - b)).toBeLessThan(1e-5 * Math.max(1, Math.abs(a)));
      }
      // Gradients of both steps (the second after an update), tensor by tensor: relative to the
      // largest gradient of the model (some, like the key bias's, are zero up to rounding).
      let worst = 0;
      for (let i = 0; i < 2; i++) {
        const a = serialGrads[i] ?? new Map<string, Float32Array>();
        const b = splitGrads[i] ?? new Map<string, Float32Array>();
        expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
        let scale = 0;
        for (const g of a.values()) for (const v of g) scale = Math.max(scale, Math.abs(v));
        for (const [key, g] of a) {
          const h = b.get(key) ?? new Float32Array();
          for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs((g[j] ?? 0) - (h[j] ?? NaN)) / scale);
        }
      }
      console.info(`${name}: split vs single-thread gradients differ by at most ${worst.toExponential(2)} (relative)`);
      expect(worst).toBeLessThan(1e-4);
      const before = tf.memory().numTensors;
      await split.run();
      expect(tf.memory().numTensors).toBe(before);
      await serial.dispose();
      await split.dispose();
    });
  }
});
