import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { numPatches, type ModelConfig } from '@shared/model-config';
import type { PretrainConfig } from '@shared/pretrain-config';
import type { PreviewKind } from '@shared/run-events';
import { writePngStrip } from '../io/png';
import {
  decode,
  encodeVisible,
  orderedTargets,
  randomMasking,
  toSpatialOrder,
  unpatchify,
  encoderInput,
  type ParamMap,
} from '../model';
import { Rng } from '../rng';
import { attackForMode } from './step';

/** How much the perturbation strip amplifies delta: 0.5 + scale * delta fills [0, 1] at |delta| = eps. */
export function perturbationScale(eps255: number): number {
  return 0.5 / (eps255 / 255);
}

export interface PreviewSnapshot {
  dir: string;
  files: Partial<Record<PreviewKind, string>>;
  count: number;
  perturbationScale: number;
}

/**
 * Images of the fixed preview batch at this point of training: clean, masked input (masked patches
 * grey), adversarial input, perturbation (amplified), reconstruction (visible patches from the
 * input, masked ones predicted; with norm_pix_loss, predictions are mapped back with each target
 * patch's mean and std, as MAE's visualisation does). The mask and the attack's start are drawn from
 * a fixed seed, so snapshots of one run, and of runs with the same seed, are comparable.
 */
export async function writePreviewSnapshot(
  params: ParamMap,
  config: ModelConfig,
  run: Pick<PretrainConfig, 'mode' | 'attack' | 'maskRatio' | 'normPixLoss' | 'seed'>,
  clean: tf.Tensor4D,
  dir: string,
): Promise<PreviewSnapshot> {
  const count = clean.shape[0];
  const rng = new Rng(run.seed ^ 0x5eed);
  const mask = randomMasking(rng, count, numPatches(config), run.maskRatio);
  const images = tf.tidy((): Record<PreviewKind, tf.Tensor> => {
    const attacked = attackForMode(params, config, clean, mask, run, rng);
    const adversarial = attacked?.adversarial ?? clean;
    const latent = encodeVisible(params, config, encoderInput(config, adversarial, mask), mask, {
      trainParams: false,
    });
    let pred: tf.Tensor3D = decode(params, config, latent, mask, { trainParams: false });
    const targets = orderedTargets(config, clean, mask);
    if (run.normPixLoss) {
      const mean = tf.mean(targets, -1, true);
      const k = targets.shape[2];
      const std = tf.sqrt(tf.add(tf.div(tf.sum(tf.square(tf.sub(targets, mean)), -1, true), k - 1), 1e-6));
      pred = tf.add(tf.mul(pred, std), mean) as tf.Tensor3D;
    }
    const [n, l, k] = pred.shape;
    const isMasked = tf.concat([tf.zeros([n, mask.numVisible, 1]), tf.ones([n, mask.numMasked, 1])], 1);
    const orderedAdversarial = orderedTargetsOf(adversarial, config, mask);
    const reconOrdered = tf.add(tf.mul(pred, isMasked), tf.mul(orderedAdversarial, tf.sub(1, isMasked)));
    const toImage = (ordered: tf.Tensor3D): tf.Tensor4D =>
      unpatchify(toSpatialOrder(ordered, mask), config.patchSize, config.channels);
    const grey = tf.fill([n, l, k], 0.5);
    const maskedInput = tf.add(
      tf.mul(orderedTargetsOf(clean, config, mask), tf.sub(1, isMasked)),
      tf.mul(grey, isMasked),
    );
    const delta = attacked?.delta ?? tf.zerosLike(clean);
    const scale = perturbationScale(run.attack.eps);
    return {
      clean: tf.clone(clean),
      masked: toImage(maskedInput as tf.Tensor3D),
      adversarial: adversarial === clean ? tf.clone(clean) : adversarial,
      perturbation: tf.clipByValue(tf.add(tf.mul(delta, scale), 0.5), 0, 1),
      reconstruction: tf.clipByValue(toImage(reconOrdered as tf.Tensor3D), 0, 1),
    };
  });
  mask.dispose();
  // Read asynchronously: the webgpu backend has no synchronous read under Node.
  const arrays: Partial<Record<PreviewKind, Float32Array>> = {};
  try {
    for (const [kind, t] of Object.entries(images))
      arrays[kind as PreviewKind] = ((await t.data()) as Float32Array).slice();
  } finally {
    tf.dispose(Object.values(images));
  }

  await mkdir(dir, { recursive: true });
  const kinds: PreviewKind[] =
    run.mode === 'mae'
      ? ['clean', 'masked', 'reconstruction']
      : ['clean', 'masked', 'adversarial', 'perturbation', 'reconstruction'];
  const files: Partial<Record<PreviewKind, string>> = {};
  for (const kind of kinds) {
    const file = path.join(dir, `${kind}.png`);
    await writePngStrip(file, arrays[kind] as Float32Array, count, config.imageSize, config.channels);
    files[kind] = file;
  }
  return { dir, files, count, perturbationScale: perturbationScale(run.attack.eps) };
}

/** The raw pixel patches (not normalised) of `images` in the mask's visible-then-masked order. */
function orderedTargetsOf(
  images: tf.Tensor4D,
  config: ModelConfig,
  mask: Parameters<typeof orderedTargets>[2],
): tf.Tensor3D {
  return orderedTargets({ ...config, normalize: undefined }, images, mask);
}
