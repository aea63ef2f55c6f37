import * as tf from '@tensorflow/tfjs-core';
import { numPatches, patchDim } from '../../../shared/model-config';
import { PretrainMi } from '../../../shared/pretrain-config';
import { mutualInformation } from '../../mi/mutual-information';
import {
  initClassifierParams,
  initMaeParams,
  patchify,
  randomMasking,
  disposeParams,
  type ParamMap,
} from '../../model';
import { Rng } from '../../rng';
import { AdamW } from '../../train/optimizer';
import { benchModelConfig, type BenchSettings, type BenchStepName } from '../settings';
import type { BenchStep, GradientTap } from '../steps';
import { HalfRunner, type FloatMap, type GradsReply } from './half';
import { findWorkerScript, LocalSide, WorkerSide, type Side } from './sides';

/**
 * The bench's steps split by samples across this thread and one worker thread (data parallel, each
 * with its own single-threaded wasm tfjs): the attacks and the forward/backward passes run on the
 * two halves at once; this thread draws the mask and the attack's start for the whole batch, computes
 * the batch-coupled HSIC term and its gradient w.r.t. z between the two phases, sums the two halves'
 * gradients and takes the AdamW step, then sends the new weights to the worker. Same initial weights,
 * masks, starts and update as the single-thread steps (steps.ts), so the same numbers up to float32
 * summation order. `inProcess: true` runs both halves here, one after the other (for tests, and where
 * the built worker script is missing).
 */

function uniformImages(rng: Rng, s: BenchSettings): tf.Tensor4D {
  const values = new Float32Array(s.batch * s.imageSize * s.imageSize * s.channels);
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform();
  return tf.tensor4d(values, [s.batch, s.imageSize, s.imageSize, s.channels]);
}

function paramValues(params: ParamMap): FloatMap {
  const out: FloatMap = {};
  for (const [name, v] of params) out[name] = Float32Array.from(v.dataSync() as Float32Array);
  return out;
}

function sumGrads(params: ParamMap, replies: GradsReply[]): Map<string, tf.Tensor> {
  const grads = new Map<string, tf.Tensor>();
  for (const [name, param] of params) {
    const parts = replies.map((r) => r.grads[name]).filter((g): g is Float32Array => g !== undefined);
    const first = parts[0];
    if (!first) continue;
    const total = Float32Array.from(first);
    for (const part of parts.slice(1))
      for (let i = 0; i < total.length; i++) total[i] = (total[i] ?? 0) + (part[i] ?? 0);
    grads.set(name, tf.tensor(total, param.shape, 'float32'));
  }
  return grads;
}

async function sides(
  params: ParamMap,
  s: BenchSettings,
  model: 'mae' | 'classifier',
  inProcess: boolean,
): Promise<{ local: Side; other: Side; remote: boolean }> {
  const config = benchModelConfig(s);
  const local = new LocalSide(new HalfRunner(params, config, s));
  const script = inProcess ? null : findWorkerScript();
  if (!inProcess && !script) {
    throw new Error('bench: --workers 2 needs the built worker (out/main/bench-worker.js): run `npm run build` first');
  }
  if (!script) return { local, other: new LocalSide(new HalfRunner(params, config, s)), remote: false };
  return { local, other: await WorkerSide.start(script, { settings: s, model }), remote: true };
}

export async function parallelBenchStep(
  name: BenchStepName,
  s: BenchSettings,
  options: { inProcess?: boolean; tap?: GradientTap } = {},
): Promise<BenchStep> {
  if (!options.inProcess && tf.getBackend() !== 'wasm') {
    // The worker runs its own wasm tfjs; tfjs-node cannot be loaded a second time in a worker thread.
    throw new Error(
      `bench: --workers 2 splits batches across two wasm instances; the active backend is ${tf.getBackend()}`,
    );
  }
  const config = benchModelConfig(s);
  const rng = new Rng(s.seed);
  const mae = name === 'pretrain';
  const params = mae ? initMaeParams(config, rng.fork()) : initClassifierParams(config, s.classes, rng.fork());
  const optimizer = new AdamW(
    params,
    mae ? { betas: [0.9, 0.95], weightDecay: 0.05 } : { betas: [0.9, 0.999], weightDecay: 0.05 },
  );
  const images = uniformImages(rng, s);
  const labels = mae ? new Int32Array(0) : Int32Array.from({ length: s.batch }, () => rng.int(s.classes));
  const lr = mae ? (1.5e-4 * s.batch) / 256 : (5e-3 * s.batch) / 256;
  const { local, other, remote } = await sides(params, s, mae ? 'mae' : 'classifier', options.inProcess ?? false);
  const imageData = Float32Array.from(images.dataSync() as Float32Array);
  const n = s.batch;
  const n0 = Math.ceil(n / 2);
  const perImage = s.imageSize * s.imageSize * s.channels;
  const mi = PretrainMi.parse({ estimator: 'hsic', lambda: s.miLambda, sigma: s.miSigma });
  let stale = remote;

  const finish = async (replies: GradsReply[], loss: number): Promise<number> => {
    const grads = sumGrads(params, replies);
    options.tap?.(grads);
    optimizer.applyGradients(grads, lr);
    tf.dispose([...grads.values()]);
    stale = remote;
    return loss;
  };
  const sync = async () => {
    if (stale) await other.setParams(paramValues(params));
    stale = false;
  };

  const pretrain = async (): Promise<number> => {
    const L = numPatches(config);
    const mask = randomMasking(rng, n, L, s.maskRatio);
    const eps = s.pretrainEps / 255;
    const K = patchDim(config);
    const lv = mask.numVisible;
    const startTensor = tf.randomUniform([n, lv, K], -eps, eps, 'float32', rng.seed());
    const start = Float32Array.from(startTensor.dataSync() as Float32Array);
    startTensor.dispose();
    mask.dispose();
    const half = (a: number, b: number) => ({
      images: imageData.slice(a * perImage, b * perImage),
      visible: mask.visible.slice(a, b),
      masked: mask.masked.slice(a, b),
      start: start.slice(a * lv * K, b * lv * K),
    });
    await sync();
    const [attackB, attackA] = await Promise.all([
      other.pretrainAttack(half(n0, n)),
      local.pretrainAttack(half(0, n0)),
    ]);
    const zSize = (lv + 1) * config.width;
    const adversarial = new Float32Array(n * perImage);
    adversarial.set(attackA.adversarial, 0);
    adversarial.set(attackB.adversarial, n0 * perImage);
    const latent = new Float32Array(n * zSize);
    latent.set(attackA.latent, 0);
    latent.set(attackB.latent, n0 * zSize);
    const [miValue, miGrad] = tf.tidy(() => {
      const adv = tf.tensor4d(adversarial, [n, s.imageSize, s.imageSize, s.channels]);
      const z = tf.tensor3d(latent, [n, lv + 1, config.width]);
      const { value, grad } = tf.valueAndGrad((zv: tf.Tensor) =>
        mutualInformation(mi.estimator, patchify(adv, config.patchSize), zv, mi),
      )(z);
      return [value.dataSync()[0] ?? NaN, Float32Array.from(tf.mul(grad, mi.lambda).dataSync() as Float32Array)];
    });
    const [trainB, trainA] = await Promise.all([
      other.pretrainTrain(miGrad.slice(n0 * zSize), (n - n0) / n),
      local.pretrainTrain(miGrad.slice(0, n0 * zSize), n0 / n),
    ]);
    const recon = (n0 / n) * trainA.loss + ((n - n0) / n) * trainB.loss;
    return finish([trainA, trainB], recon + mi.lambda * (miValue as number));
  };

  const pgdat = async (): Promise<number> => {
    const seed = rng.nextUint32();
    const half = (a: number, b: number) => ({
      images: imageData.slice(a * perImage, b * perImage),
      labels: labels.slice(a, b),
      ids: Int32Array.from({ length: b - a }, (_, i) => a + i),
      seed,
      batch: n,
    });
    await sync();
    const [b, a] = await Promise.all([other.pgdat(half(n0, n)), local.pgdat(half(0, n0))]);
    return finish([a, b], a.loss + b.loss);
  };

  return {
    name,
    params,
    run: mae ? pretrain : pgdat,
    dispose: async () => {
      await Promise.all([local.close(), other.close()]);
      images.dispose();
      optimizer.dispose();
      disposeParams(params);
    },
  };
}
