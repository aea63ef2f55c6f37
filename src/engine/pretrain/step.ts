import * as tf from '@tensorflow/tfjs-core';
import { numPatches, type ModelConfig } from '@shared/model-config';
import type { PretrainConfig } from '@shared/pretrain-config';
import { mutualInformation } from '../mi/mutual-information';
import {
  decode,
  encodeVisible,
  encodeVisibleWithLayer,
  orderedTargets,
  patchify,
  randomMasking,
  reconstructionLoss,
  toSpatialOrder,
  unpatchify,
  encoderFor,
  encoderInput,
  type ParamMap,
  type PatchMask,
} from '../model';
import type { Rng } from '../rng';

/**
 * One MIMIR pre-training step (paper Algorithm 1, spec section 3), as pure tensor work:
 *   1. delta ~ U[-eps, eps]; `steps` signed-gradient ascent steps of size alpha on the reconstruction
 *      loss (no labels), projected to the eps-ball and [0, 1]. perturb 'visible': the target is the
 *      clean image, detached; 'image': the adversarial image itself, differentiated through, as the
 *      authors' code does (so masked pixels move too, through the target);
 *   2. z = encoder(x + delta); loss = recon(decoder(z), clean x on masked patches) + lambda * MI(x + delta, z);
 *      MI takes z at mi.layer (Table XXI: block k's output, with or without the final norm; by default z itself);
 *   3. gradients of the loss w.r.t. every parameter (the caller applies them).
 * `perturb: visible` puts delta on the encoder's visible patches only (the paper); `image` on the whole
 * image (the authors' code). `attackMask: fresh` draws a new mask for every forward pass (the code).
 * MI(x + delta, z) is computed in every mode and enters the loss only in mode mimir.
 */

export interface PretrainStepResult {
  grads: Map<string, tf.Tensor>;
  /** The training objective (recon + lambda * MI for mimir, recon otherwise). */
  loss: tf.Scalar;
  recon: tf.Scalar;
  /** MI(x + delta, z), the estimate the paper's Fig. 4 plots. */
  mi: tf.Scalar;
  /** The reconstruction loss the attack reached on its mask (equal to recon for mae). */
  attackLoss: tf.Scalar;
  /**
   * ||grad of lambda * MI|| / ||grad of recon|| over the encoder's parameters, when the step was asked
   * to measure it (an extra forward and backward pass through the encoder) and the penalty is on.
   */
  penaltyGradRatio: tf.Scalar | null;
  dispose(): void;
}

/** What an adversarial example is, for the training pass and for previews. */
export interface Perturbation {
  /** The attacked images [N, H, W, C] in [0, 1] (the clean images for mae). */
  adversarial: tf.Tensor4D;
  /** adversarial - clean, [N, H, W, C]. */
  delta: tf.Tensor4D;
  /** The attack's final reconstruction loss. */
  loss: tf.Scalar;
}

type AttackSettings = PretrainConfig['attack'];

const eps255 = (value: number): number => value / 255;

/** x + delta projected to the eps-ball around x and to [0, 1]; returns the projected delta. */
function project(x: tf.Tensor, delta: tf.Tensor, eps: number): tf.Tensor {
  return tf.sub(tf.clipByValue(tf.add(x, tf.clipByValue(delta, -eps, eps)), 0, 1), x);
}

function reconOf(
  params: ParamMap,
  config: ModelConfig,
  input: tf.Tensor3D,
  targets: tf.Tensor3D,
  mask: PatchMask,
  normPixLoss: boolean,
  trainParams: boolean,
): tf.Scalar {
  const latent = encodeVisible(params, config, input, mask, { trainParams });
  const pred = decode(params, config, latent, mask, { trainParams });
  return reconstructionLoss(pred, targets, mask.numVisible, { normPixLoss });
}

/**
 * Per-input-patch values [N, M, K] (encoderInput's shape) as an image [N, H, W, C]: visible patches
 * scattered with zeros at masked ones, or, when the encoder reads every patch, all of them in place.
 */
function visibleToImage(config: ModelConfig, values: tf.Tensor3D, mask: PatchMask): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, m, k] = values.shape;
    if (m === numPatches(config)) return unpatchify(values, config.patchSize, config.channels);
    const full = tf.concat([values, tf.zeros([n, mask.numMasked, k])], 1) as tf.Tensor3D;
    const spatial = toSpatialOrder(full, mask);
    const g = config.imageSize / config.patchSize;
    const p = config.patchSize;
    const grid = tf.reshape(spatial, [n * g, g, p, p * config.channels]);
    return tf.reshape(tf.transpose(grid, [0, 2, 1, 3]), [n, config.imageSize, config.imageSize, config.channels]);
  });
}

/**
 * The objective of the authors' image attack: MAE's loss of the model called on `adversarial`, whose
 * target is patchified from `adversarial` itself (norm_pix included). The gradient flows through the
 * target, so masked pixels, which the encoder never sees, get one too.
 */
export function imageAttackLoss(
  params: ParamMap,
  config: ModelConfig,
  adversarial: tf.Tensor4D,
  mask: PatchMask,
  normPixLoss: boolean,
): tf.Scalar {
  return reconOf(
    params,
    config,
    encoderInput(config, adversarial, mask),
    orderedTargets(config, adversarial, mask),
    mask,
    normPixLoss,
    false,
  );
}

/**
 * The attack of step 1. With perturb 'visible', `mask` is the mask it attacks (the training mask);
 * with 'image' and attackMask 'fresh', each ascent step draws its own mask from `rng`.
 */
export function attackReconstruction(
  params: ParamMap,
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: PatchMask,
  attack: AttackSettings,
  options: {
    maskRatio: number;
    normPixLoss: boolean;
    rng: Rng;
    /** The uniform start to use instead of drawing one: [N, Lv, K] for perturb 'visible', [N, H, W, C] for 'image'. */
    start?: tf.Tensor;
  },
): Perturbation {
  const eps = eps255(attack.eps);
  const alpha = eps255(attack.alpha);
  const seed = options.rng.seed();

  if (attack.perturb === 'visible') {
    return tf.tidy(() => {
      const vis = encoderInput(config, images, mask);
      const targets = orderedTargets(config, images, mask);
      const start = options.start ?? tf.randomUniform(vis.shape, -eps, eps, 'float32', seed);
      let delta = project(vis, start, eps);
      let loss: tf.Scalar | null = null;
      for (let s = 0; s < attack.steps; s++) {
        const { value, grad } = tf.valueAndGrad((d: tf.Tensor) =>
          reconOf(params, config, tf.add(vis, d) as tf.Tensor3D, targets, mask, options.normPixLoss, false),
        )(delta);
        loss = value;
        delta = project(vis, tf.add(delta, tf.mul(tf.sign(grad), alpha)), eps);
      }
      const deltaImage = visibleToImage(config, delta as tf.Tensor3D, mask);
      return {
        adversarial: tf.add(images, deltaImage) as tf.Tensor4D,
        delta: deltaImage,
        loss: loss ?? tf.scalar(0),
      };
    });
  }

  return tf.tidy(() => {
    const start = options.start ?? tf.randomUniform(images.shape, -eps, eps, 'float32', seed);
    let delta = project(images, start, eps);
    let loss: tf.Scalar | null = null;
    for (let s = 0; s < attack.steps; s++) {
      const stepMask =
        attack.attackMask === 'fresh'
          ? randomMasking(options.rng, images.shape[0], numPatches(config), options.maskRatio)
          : mask;
      const { value, grad } = tf.valueAndGrad((d: tf.Tensor) =>
        imageAttackLoss(params, config, tf.add(images, d) as tf.Tensor4D, stepMask, options.normPixLoss),
      )(delta);
      if (stepMask !== mask) stepMask.dispose();
      loss = value;
      delta = project(images, tf.add(delta, tf.mul(tf.sign(grad), alpha)), eps);
    }
    return {
      adversarial: tf.add(images, delta) as tf.Tensor4D,
      delta: delta as tf.Tensor4D,
      loss: loss ?? tf.scalar(0),
    };
  });
}

export interface PretrainStepOptions {
  params: ParamMap;
  config: ModelConfig;
  run: Pick<PretrainConfig, 'mode' | 'attack' | 'mi' | 'maskRatio' | 'normPixLoss'>;
  images: tf.Tensor4D;
  rng: Rng;
  /** Also measure `penaltyGradRatio` (mode mimir with lambda > 0 only). */
  measurePenaltyGradient?: boolean;
  /**
   * Given instead of drawn from `rng` (the golden-step tests hand the same draws to the PyTorch
   * engine): the step's mask (the caller keeps ownership) and perturb 'visible''s uniform start [N, Lv, K].
   */
  given?: { mask?: PatchMask; attackStart?: tf.Tensor3D };
}

/** Whether the MI penalty enters the loss: mode mimir with a positive lambda. */
export function penaltyIsOn(run: Pick<PretrainConfig, 'mode' | 'mi'>): boolean {
  return run.mode === 'mimir' && run.mi.lambda > 0;
}

/**
 * The variables pre-training trains: all but those the encoder keeps from initialisation
 * (a ConvStem's stem with pretrainStem false), which get no gradient and so no optimiser update.
 */
export function trainedInPretraining(params: ParamMap, config: ModelConfig): tf.Variable[] {
  const encoder = encoderFor(config);
  return [...params].filter(([name]) => !encoder.frozenInPretraining(config, name)).map(([, v]) => v);
}

/** The encoder's parameters (what z depends on): everything but the decoder and its mask token. */
export function isEncoderParam(name: string): boolean {
  return !name.startsWith('decoder') && name !== 'mask_token';
}

/**
 * ||g_penalty|| / ||g_recon|| on the encoder, from the step's total gradients and one more pass that
 * differentiates lambda * MI(x + delta, z) alone (the decoder plays no part in it); g_recon is the
 * total minus g_penalty.
 */
function penaltyGradientRatio(
  params: ParamMap,
  config: ModelConfig,
  run: PretrainStepOptions['run'],
  adversarial: tf.Tensor4D,
  mask: PatchMask,
  totalGrads: Map<string, tf.Tensor>,
): tf.Scalar {
  const names = [...params.keys()].filter(isEncoderParam);
  return tf.tidy(() => {
    const { grads } = tf.variableGrads(
      () => {
        const input = encoderInput(config, adversarial, mask);
        const { features } = encodeVisibleWithLayer(params, config, input, mask, run.mi.layer);
        const mi = mutualInformation(run.mi.estimator, patchify(adversarial, config.patchSize), features, run.mi);
        return tf.mul(mi, run.mi.lambda) as tf.Scalar;
      },
      names.map((name) => params.get(name) as tf.Variable),
    );
    let penalty: tf.Tensor = tf.scalar(0);
    let recon: tf.Tensor = tf.scalar(0);
    for (const name of names) {
      const total = totalGrads.get(name);
      const own = grads[(params.get(name) as tf.Variable).name];
      if (!total || !own) continue;
      penalty = tf.add(penalty, tf.sum(tf.square(own)));
      recon = tf.add(recon, tf.sum(tf.square(tf.sub(total, own))));
    }
    return tf.div(tf.sqrt(penalty), tf.sqrt(recon)) as tf.Scalar;
  });
}

/**
 * The reconstruction loss and MI(x, z) of the untrained model on one clean batch (no attack, no
 * gradient), for the penalty check before training: the attack moves MI(x + delta, z) little at the
 * start, and this costs one forward pass. The scalars stay on the device (the caller disposes them).
 */
export function penaltyAtStart(
  params: ParamMap,
  config: ModelConfig,
  run: PretrainStepOptions['run'],
  images: tf.Tensor4D,
  rng: Rng,
): { recon: tf.Scalar; mi: tf.Scalar } {
  const mask = randomMasking(rng, images.shape[0], numPatches(config), run.maskRatio);
  try {
    return tf.tidy(() => {
      const input = encoderInput(config, images, mask);
      const { latent, features } = encodeVisibleWithLayer(params, config, input, mask, run.mi.layer, {
        trainParams: false,
      });
      const pred = decode(params, config, latent, mask, { trainParams: false });
      const targets = orderedTargets(config, images, mask);
      return {
        recon: reconstructionLoss(pred, targets, mask.numVisible, { normPixLoss: run.normPixLoss }),
        mi: mutualInformation(run.mi.estimator, patchify(images, config.patchSize), features, run.mi),
      };
    });
  } finally {
    mask.dispose();
  }
}

/** Step 1 as the run's mode has it: the attack with the run's settings, or none for plain MAE. */
export function attackForMode(
  params: ParamMap,
  config: ModelConfig,
  images: tf.Tensor4D,
  mask: PatchMask,
  run: Pick<PretrainConfig, 'mode' | 'attack' | 'maskRatio' | 'normPixLoss'>,
  rng: Rng,
  start?: tf.Tensor,
): Perturbation | null {
  if (run.mode === 'mae') return null;
  return attackReconstruction(params, config, images, mask, run.attack, {
    maskRatio: run.maskRatio,
    normPixLoss: run.normPixLoss,
    rng,
    start,
  });
}

/** Steps 1-3 for one batch; the caller owns (and disposes) the result. */
export function pretrainStep({
  params,
  config,
  run,
  images,
  rng,
  measurePenaltyGradient = false,
  given,
}: PretrainStepOptions): PretrainStepResult {
  const n = images.shape[0];
  const order = run.mi.tokenOrder === 'shuffled' ? 'shuffled' : 'spatial';
  const mask = given?.mask ?? randomMasking(rng, n, numPatches(config), run.maskRatio, { order });
  try {
    const attacked = attackForMode(params, config, images, mask, run, rng, given?.attackStart);
    const trainMask =
      run.attack.attackMask === 'fresh' && run.mode !== 'mae'
        ? randomMasking(rng, n, numPatches(config), run.maskRatio, { order })
        : mask;
    try {
      const adversarial = attacked?.adversarial ?? images;
      const kept: tf.Scalar[] = [];
      const { value: loss, grads } = tf.variableGrads(
        () => {
          const input = encoderInput(config, adversarial, trainMask);
          const { latent, features } = encodeVisibleWithLayer(params, config, input, trainMask, run.mi.layer);
          const pred = decode(params, config, latent, trainMask);
          const recon = reconstructionLoss(pred, orderedTargets(config, images, trainMask), trainMask.numVisible, {
            normPixLoss: run.normPixLoss,
          });
          const mi = mutualInformation(run.mi.estimator, patchify(adversarial, config.patchSize), features, run.mi);
          kept.push(tf.keep(recon), tf.keep(mi));
          return penaltyIsOn(run) ? tf.add(recon, tf.mul(mi, run.mi.lambda)) : tf.clone(recon);
        },
        trainedInPretraining(params, config),
      );
      const [recon, mi] = kept as [tf.Scalar, tf.Scalar];
      const named = new Map<string, tf.Tensor>();
      const byVariableName = new Map([...params].map(([name, variable]) => [variable.name, name]));
      for (const [variableName, grad] of Object.entries(grads)) {
        const name = byVariableName.get(variableName);
        if (name === undefined) throw new Error(`internal: a gradient for unknown variable ${variableName}`);
        named.set(name, grad);
      }
      const attackLoss = attacked ? attacked.loss : tf.clone(recon);
      const penaltyGradRatio =
        measurePenaltyGradient && penaltyIsOn(run)
          ? penaltyGradientRatio(params, config, run, adversarial, trainMask, named)
          : null;
      attacked?.adversarial.dispose();
      attacked?.delta.dispose();
      return {
        grads: named,
        loss,
        recon,
        mi,
        attackLoss,
        penaltyGradRatio,
        dispose: () => {
          for (const t of [loss, recon, mi, attackLoss, ...named.values()]) t.dispose();
          penaltyGradRatio?.dispose();
        },
      };
    } finally {
      if (trainMask !== mask) trainMask.dispose();
    }
  } finally {
    if (mask !== given?.mask) mask.dispose();
  }
}
