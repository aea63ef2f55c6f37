import * as tf from '@tensorflow/tfjs-core';
import { PretrainAttack, PretrainMi } from '@shared/pretrain-config';
import { ThreatBall, steepestDirection } from '../attacks/geometry';
import { crossEntropyLoss } from '../attacks/losses';
import { QueryCounter, lossAndGradient, oneHot } from '../attacks/oracle';
import { pgdStart } from '../attacks/start';
import { exampleStreams } from '../attacks/streams';
import {
  classifierForward,
  disposeParams,
  initClassifierParams,
  initMaeParams,
  makeClassifier,
  type ParamMap,
} from '../model';
import { pretrainStep } from '../pretrain/step';
import { Rng } from '../rng';
import { AdamW } from '../train/optimizer';
import { benchModelConfig, type BenchSettings, type BenchStepName } from './settings';

/**
 * The two training steps the bench times, each on a fixed batch (data loading is not part of a
 * step: the trainers prefetch it) with a fresh model and optimiser:
 * - pretrain: the engine's MIMIR step (pretrainStep: mask, visible-patch attack, recon + lambda HSIC,
 *   gradients) and an AdamW step, as the pre-training loop runs them;
 * - pgdat: PGD-AT with the attack library's PGD iteration (random start in the l_inf ball,
 *   lossAndGradient on the cross-entropy with the weights as constants, signed step, projection;
 *   what pgd(..., {keep: 'last'}) iterates, without its evaluation bookkeeping), then the
 *   cross-entropy training pass and an AdamW step.
 * A step ends when its loss has been read back, as PyTorch's loss.item() ends the torch one.
 */
export interface BenchStep {
  name: BenchStepName;
  /** The model's parameters (for checks; the step updates them). */
  params: ParamMap;
  /** Runs one step; resolves to its training loss. */
  run(): Promise<number>;
  dispose(): void | Promise<void>;
}

function uniformImages(rng: Rng, s: BenchSettings): tf.Tensor4D {
  const values = new Float32Array(s.batch * s.imageSize * s.imageSize * s.channels);
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform();
  return tf.tensor4d(values, [s.batch, s.imageSize, s.imageSize, s.channels]);
}

/** For checks: sees each step's gradients (by parameter name) before the optimiser applies them. */
export type GradientTap = (grads: Map<string, tf.Tensor>) => void;

export function pretrainBenchStep(s: BenchSettings, tap?: GradientTap): BenchStep {
  const config = benchModelConfig(s);
  const rng = new Rng(s.seed);
  const params = initMaeParams(config, rng.fork());
  const optimizer = new AdamW(params, { betas: [0.9, 0.95], weightDecay: 0.05 });
  const images = uniformImages(rng, s);
  const lr = (1.5e-4 * s.batch) / 256;
  const run = {
    mode: 'mimir' as const,
    attack: PretrainAttack.parse({ steps: s.attackSteps, eps: s.pretrainEps, alpha: s.pretrainAlpha }),
    mi: PretrainMi.parse({ estimator: s.miEstimator, lambda: s.miLambda, sigma: s.miSigma }),
    maskRatio: s.maskRatio,
    normPixLoss: true,
  };
  return {
    name: 'pretrain',
    params,
    run: async () => {
      const result = pretrainStep({ params, config, run, images, rng });
      try {
        tap?.(result.grads);
        optimizer.applyGradients(result.grads, lr);
        return (await result.loss.data())[0] ?? NaN;
      } finally {
        result.dispose();
      }
    },
    dispose: () => {
      images.dispose();
      optimizer.dispose();
      disposeParams(params);
    },
  };
}

export function pgdAtBenchStep(s: BenchSettings, tap?: GradientTap): BenchStep {
  const config = benchModelConfig(s);
  const rng = new Rng(s.seed);
  const params = initClassifierParams(config, s.classes, rng.fork());
  const optimizer = new AdamW(params, { betas: [0.9, 0.999], weightDecay: 0.05 });
  const images = uniformImages(rng, s);
  const labels = Int32Array.from({ length: s.batch }, () => rng.int(s.classes));
  const yOneHot = oneHot(labels, s.classes);
  const ids = Int32Array.from({ length: s.batch }, (_, i) => i);
  const byVariable = new Map([...params].map(([name, variable]) => [variable.name, name]));
  const attacked = makeClassifier(params, config, { trainParams: false });
  const eps = s.pgdEps / 255;
  const alpha = s.pgdAlpha / 255;
  const lr = (5e-3 * s.batch) / 256;
  return {
    name: 'pgdat',
    params,
    run: async () => {
      const ball = new ThreatBall(images, eps, 'linf');
      const counter = new QueryCounter();
      const noise = pgdStart(exampleStreams(rng.nextUint32(), ids, 'pgd', 0), images.shape, 'linf', eps);
      let current = tf.tidy(() => ball.project(tf.add(images, noise)));
      noise.dispose();
      for (let step = 0; step < s.pgdSteps; step++) {
        const g = lossAndGradient(attacked, current, (z) => crossEntropyLoss(z, yOneHot), counter);
        const next = tf.tidy(() => ball.project(tf.add(current, tf.mul(steepestDirection(g.grad, 'linf'), alpha))));
        tf.dispose([g.logits, g.loss, g.grad, current]);
        current = next;
      }
      ball.dispose();
      const xAdv = current;
      const { value, grads } = tf.variableGrads(
        () => tf.mean(crossEntropyLoss(classifierForward(params, config, xAdv).logits, yOneHot)) as tf.Scalar,
        [...params.values()],
      );
      xAdv.dispose();
      const named = new Map<string, tf.Tensor>();
      for (const [variableName, grad] of Object.entries(grads))
        named.set(byVariable.get(variableName) ?? variableName, grad);
      try {
        tap?.(named);
        optimizer.applyGradients(named, lr);
        return (await value.data())[0] ?? NaN;
      } finally {
        tf.dispose([value, ...named.values()]);
      }
    },
    dispose: () => {
      images.dispose();
      yOneHot.dispose();
      optimizer.dispose();
      disposeParams(params);
    },
  };
}

export function benchStep(name: BenchStepName, s: BenchSettings, tap?: GradientTap): BenchStep {
  return name === 'pretrain' ? pretrainBenchStep(s, tap) : pgdAtBenchStep(s, tap);
}
