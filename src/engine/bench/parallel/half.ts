import * as tf from '@tensorflow/tfjs-core';
import { numPatches, patchDim, type ModelConfig } from '../../../shared/model-config';
import { PretrainAttack } from '../../../shared/pretrain-config';
import { ThreatBall, steepestDirection } from '../../attacks/geometry';
import { crossEntropyLoss } from '../../attacks/losses';
import { QueryCounter, lossAndGradient, oneHot } from '../../attacks/oracle';
import { pgdStart } from '../../attacks/start';
import { exampleStreams } from '../../attacks/streams';
import {
  classifierForward,
  decode,
  encodeVisible,
  makeClassifier,
  maskFromIds,
  orderedTargets,
  reconstructionLoss,
  visiblePatches,
  type ParamMap,
  type PatchMask,
} from '../../model';
import { attackReconstruction } from '../../pretrain/step';
import { Rng } from '../../rng';
import type { BenchSettings } from '../settings';

/**
 * The per-sample part of a training step on a slice of the batch ("half"), as plain arrays in and
 * out, so that it runs alike in this thread or in a worker thread with its own tfjs:
 * - MIMIR step, phase A: the visible-patch attack from the given rows of the whole batch's uniform
 *   start, then the latent z of the attacked patches (no tape);
 * - phase B: gradients of w * recon(half) + sum(z(theta) * G), where G = lambda * dMI/dz comes from
 *   the whole batch (HSIC couples the samples) and w = half / batch: summed over the halves, these
 *   are exactly the gradients of recon + lambda * MI over the whole batch;
 * - PGD-AT step: PGD on the half's images (per-example start streams, so the same as in the whole
 *   batch), then the gradients of sum(CE(half)) / batch.
 */

export type FloatMap = Record<string, Float32Array>;

export interface PretrainHalfInput {
  /** [n, H, W, C]. */
  images: Float32Array;
  visible: Int32Array[];
  masked: Int32Array[];
  /** The half's rows of the whole batch's uniform start, [n, Lv, K]. */
  start: Float32Array;
}

export interface PgdHalfInput {
  images: Float32Array;
  labels: Int32Array;
  /** Example ids (rows of the whole batch): each draws its PGD start from its own stream. */
  ids: Int32Array;
  seed: number;
  /** Whole-batch size: the loss is the half's sum of CE over it. */
  batch: number;
}

export interface GradsReply {
  grads: FloatMap;
  /** pretrain: the half's reconstruction loss (mean over its samples); pgdat: its CE sum / batch. */
  loss: number;
}

function copy(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

export class HalfRunner {
  private pending: { images: tf.Tensor4D; adversarial: tf.Tensor4D; mask: PatchMask } | null = null;
  private readonly byVariable: Map<string, string>;

  constructor(
    readonly params: ParamMap,
    readonly config: ModelConfig,
    readonly settings: BenchSettings,
  ) {
    this.byVariable = new Map([...params].map(([name, variable]) => [variable.name, name]));
  }

  setParams(values: FloatMap): void {
    for (const [name, data] of Object.entries(values)) {
      const param = this.params.get(name);
      if (!param) throw new Error(`half: unknown parameter ${name}`);
      const t = tf.tensor(data, param.shape, 'float32');
      param.assign(t);
      t.dispose();
    }
  }

  pretrainAttack(input: PretrainHalfInput): { adversarial: Float32Array; latent: Float32Array } {
    this.release();
    const { config, settings: s, params } = this;
    const n = input.visible.length;
    const images = tf.tensor4d(input.images, [n, config.imageSize, config.imageSize, config.channels]);
    const mask = maskFromIds(input.visible, input.masked, numPatches(config));
    const start = tf.tensor3d(input.start, [n, mask.numVisible, patchDim(config)]);
    const attack = PretrainAttack.parse({ steps: s.attackSteps, eps: s.pretrainEps, alpha: s.pretrainAlpha });
    const attacked = attackReconstruction(params, config, images, mask, attack, {
      maskRatio: s.maskRatio,
      normPixLoss: true,
      rng: new Rng(0),
      start,
    });
    tf.dispose([start, attacked.delta, attacked.loss]);
    const latent = tf.tidy(() =>
      encodeVisible(params, config, visiblePatches(config, attacked.adversarial, mask), mask),
    );
    this.pending = { images, adversarial: attacked.adversarial, mask };
    const reply = { adversarial: copy(attacked.adversarial), latent: copy(latent) };
    latent.dispose();
    return reply;
  }

  /** `miGrad`: lambda * dMI/dz for this half's rows, [n, 1 + Lv, width]; `weight`: n / batch. */
  pretrainTrain(miGrad: Float32Array, weight: number): GradsReply {
    const pending = this.pending;
    if (!pending) throw new Error('half: pretrainTrain before pretrainAttack');
    const { config, params } = this;
    const { images, adversarial, mask } = pending;
    const g = tf.tensor3d(miGrad, [mask.batch, mask.numVisible + 1, config.width]);
    const kept: tf.Scalar[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const latent = encodeVisible(params, config, visiblePatches(config, adversarial, mask), mask);
      const pred = decode(params, config, latent, mask);
      const recon = reconstructionLoss(pred, orderedTargets(config, images, mask), mask.numVisible);
      kept.push(tf.keep(recon));
      return tf.add(tf.mul(recon, weight), tf.sum(tf.mul(latent, g))) as tf.Scalar;
    }, [...params.values()]);
    const recon = kept[0]?.dataSync()[0] ?? NaN;
    const reply = { grads: this.named(grads), loss: recon };
    tf.dispose([g, value, ...kept]);
    this.release();
    return reply;
  }

  pgdat(input: PgdHalfInput): GradsReply {
    const { config, settings: s, params } = this;
    const n = input.labels.length;
    const images = tf.tensor4d(input.images, [n, config.imageSize, config.imageSize, config.channels]);
    const yOneHot = oneHot(input.labels, s.classes);
    const eps = s.pgdEps / 255;
    const alpha = s.pgdAlpha / 255;
    const model = makeClassifier(params, config, { trainParams: false });
    const ball = new ThreatBall(images, eps, 'linf');
    const counter = new QueryCounter();
    const noise = pgdStart(exampleStreams(input.seed, input.ids, 'pgd', 0), images.shape, 'linf', eps);
    let current = tf.tidy(() => ball.project(tf.add(images, noise)));
    noise.dispose();
    for (let step = 0; step < s.pgdSteps; step++) {
      const g = lossAndGradient(model, current, (z) => crossEntropyLoss(z, yOneHot), counter);
      const next = tf.tidy(() => ball.project(tf.add(current, tf.mul(steepestDirection(g.grad, 'linf'), alpha))));
      tf.dispose([g.logits, g.loss, g.grad, current]);
      current = next;
    }
    ball.dispose();
    const xAdv = current;
    const { value, grads } = tf.variableGrads(
      () =>
        tf.div(
          tf.sum(crossEntropyLoss(classifierForward(params, config, xAdv).logits, yOneHot)),
          input.batch,
        ) as tf.Scalar,
      [...params.values()],
    );
    const reply = { grads: this.named(grads), loss: value.dataSync()[0] ?? NaN };
    tf.dispose([images, yOneHot, xAdv, value]);
    return reply;
  }

  release(): void {
    if (!this.pending) return;
    tf.dispose([this.pending.images, this.pending.adversarial]);
    this.pending.mask.dispose();
    this.pending = null;
  }

  private named(grads: tf.NamedTensorMap): FloatMap {
    const out: FloatMap = {};
    for (const [variableName, grad] of Object.entries(grads)) {
      out[this.byVariable.get(variableName) ?? variableName] = copy(grad);
      grad.dispose();
    }
    return out;
  }
}
