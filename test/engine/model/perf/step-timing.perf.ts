import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { initMaeParams, maeForward, randomMasking, type AttentionStrategy } from '../../../../src/engine/model';
import { Rng } from '../../../../src/engine/rng';
import { ModelConfig } from '../../../../src/shared/model-config';
import { useBackend } from '../../../helpers/backend';

/**
 * The benchmark configuration of reference/anchors.md: width 192, depth 2, 3 heads, 32 px, patch 2,
 * batch 32, mask 0.75, decoder 128 x 2 x 16 heads, on wasm. Reports wall and process CPU time (the
 * machine is shared, so CPU time is the steadier figure; wasm runs on one thread).
 * MIMIR_PERF_ATTENTION=batched|sliced|auto picks the attention strategy (default auto).
 */
it('times forward + backward of the benchmark MAE on wasm', async () => {
  await useBackend('wasm');
  const config = ModelConfig.parse({
    imageSize: 32,
    patchSize: 2,
    width: 192,
    depth: 2,
    heads: 3,
    decoderWidth: 128,
    decoderDepth: 2,
    decoderHeads: 16,
  });
  const attention = (process.env.MIMIR_PERF_ATTENTION ?? 'auto') as AttentionStrategy;
  const reps = Number(process.env.MIMIR_PERF_REPS ?? 3);
  const rng = new Rng(1);
  const params = initMaeParams(config, rng);
  const images = tf.randomUniform([32, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const mask = randomMasking(rng, 32, 256, 0.75);

  const measure = (f: () => void) => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    f();
    const used = process.cpuUsage(cpu);
    return { wall: performance.now() - start, cpu: (used.user + used.system) / 1000 };
  };
  const train = () => {
    const { value, grads } = tf.variableGrads(() => maeForward(params, config, images, mask, { attention }).loss);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    tf.dispose([value, grads]);
  };
  const attack = () => {
    const delta = tf.zeros([32, mask.numVisible, 12]);
    const lossOf = (d: tf.Tensor) =>
      maeForward(params, config, images, mask, { attention, delta: d as tf.Tensor3D, trainParams: false }).loss;
    const g = tf.grad(lossOf)(delta);
    g.dataSync();
    tf.dispose([delta, g]);
  };
  const forward = () => tf.tidy(() => maeForward(params, config, images, mask, { attention }).loss.dataSync());

  train();
  attack(); // warm-up: wasm heap growth, XNNPACK set-up
  const rows: Record<string, { wall: number; cpu: number }[]> = { forward: [], train: [], attack: [] };
  for (let i = 0; i < reps; i++) {
    rows.forward?.push(measure(forward));
    rows.train?.push(measure(train));
    rows.attack?.push(measure(attack));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  console.info(`attention ${attention}, ${reps} runs each, median (wall ms / cpu ms):`);
  for (const [name, r] of Object.entries(rows)) {
    console.info(
      `  ${name.padEnd(8)} ${median(r.map((x) => x.wall)).toFixed(0)} / ${median(r.map((x) => x.cpu)).toFixed(0)}` +
        `   all: ${r.map((x) => `${x.wall.toFixed(0)}/${x.cpu.toFixed(0)}`).join(' ')}`,
    );
  }
  console.info(`  tensors alive ${tf.memory().numTensors}, wasm bytes ${tf.memory().numBytes}`);
  mask.dispose();
  images.dispose();
  for (const v of params.values()) v.dispose();
});
