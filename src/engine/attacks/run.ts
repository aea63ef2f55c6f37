import * as tf from '@tensorflow/tfjs-core';
import {
  ATTACK_VERSIONS,
  AttackRunRecord,
  AttackSpec,
  AutoAttackRecord,
  AutoAttackSpec,
  type AttackSpecInput,
  type AutoAttackSpecInput,
} from '@shared/attack-config';
import { apgd, apgdTargeted } from './apgd';
import type { AutoAttackResult } from './autoattack';
import { cwL2, type CwL2Result } from './cw';
import { fabTargeted } from './fab';
import { crossEntropyPlusMi, fgsm, pgd, pgdFeature } from './pgd';
import { square } from './square';
import type { AttackResult, Classifier, CommonAttackOptions, Labels } from './types';

/** Any attack spec but AutoAttack's, as written by a caller (defaults may be left out). */
export type SingleAttackSpec = Exclude<AttackSpecInput, AutoAttackSpecInput>;

export interface RunAttackExtras extends CommonAttackOptions {
  /** PGD-MI: the batch MI estimate I(x + delta, features) as a differentiable scalar. */
  mi?: (xAdv: tf.Tensor4D, logits: tf.Tensor2D) => tf.Scalar;
  /** PGD-fea: the backbone's features (the authors' forward_features: every token after the last block). */
  features?: (x: tf.Tensor4D) => tf.Tensor;
}

/** Runs one attack from its validated spec, so what runs is exactly what the record says. */
export async function runAttack(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  specInput: SingleAttackSpec,
  extras: RunAttackExtras = {},
): Promise<AttackResult | CwL2Result> {
  const spec = AttackSpec.parse(specInput);
  const common = { seed: spec.seed, ids: extras.ids, onProgress: extras.onProgress, signal: extras.signal };
  switch (spec.attack) {
    case 'fgsm':
      return fgsm(model, x, labels, { ...common, threat: spec.threat, eps: spec.eps });
    case 'pgd':
    case 'pgd-mi':
    case 'pgd-fea': {
      const options = {
        ...common,
        threat: spec.threat,
        eps: spec.eps,
        steps: spec.steps,
        alpha: spec.alpha,
        randomStart: spec.randomStart,
        restarts: spec.restarts,
        keep: spec.keep,
      };
      if (spec.attack === 'pgd') return pgd(model, x, labels, { ...options, loss: spec.loss });
      if (spec.attack === 'pgd-fea') {
        if (!extras.features) throw new Error('PGD-fea needs the backbone feature function');
        return pgdFeature(model, extras.features, x, labels, options);
      }
      if (!extras.mi) throw new Error('PGD-MI needs the mutual-information estimate');
      return pgd(model, x, labels, { ...options, loss: crossEntropyPlusMi(spec.lambda, extras.mi) });
    }
    case 'apgd-ce':
    case 'apgd-dlr':
      return apgd(model, x, labels, {
        ...common,
        threat: spec.threat,
        eps: spec.eps,
        iterations: spec.iterations,
        restarts: spec.restarts,
        rho: spec.rho,
        loss: spec.attack === 'apgd-ce' ? 'ce' : 'dlr',
      });
    case 'apgd-t':
      return apgdTargeted(model, x, labels, {
        ...common,
        threat: spec.threat,
        eps: spec.eps,
        iterations: spec.iterations,
        targets: spec.targets,
        restarts: spec.restarts,
        rho: spec.rho,
      });
    case 'fab-t':
      return fabTargeted(model, x, labels, { ...common, ...spec });
    case 'square':
      return square(model, x, labels, { ...common, ...spec, rescaleSchedule: false });
    case 'cw-l2':
      return cwL2(model, x, labels, {
        ...common,
        c: spec.c,
        kappa: spec.kappa,
        steps: spec.steps,
        learningRate: spec.learningRate,
        eps: spec.eps,
      });
    case 'autoattack':
      throw new Error('run AutoAttack with autoAttack(), which records its stages');
  }
}

export interface RecordContext {
  backend: string;
  /** Identity of the evaluated examples, in attack order. */
  ids: number[];
  source?: string;
  durationMs: number;
  /** Store the per-example outcome (robust, margin, norm). Default true. */
  perExample?: boolean;
}

const share = (flags: boolean[]) => flags.filter(Boolean).length / Math.max(flags.length, 1);

/** The protocol and numbers of one attack run, for the store. */
export function attackRunRecord(
  spec: SingleAttackSpec,
  result: AttackResult | CwL2Result,
  context: RecordContext,
): AttackRunRecord {
  const parsed = AttackSpec.parse(spec);
  return AttackRunRecord.parse({
    spec: parsed,
    implementation: ATTACK_VERSIONS[parsed.attack],
    backend: context.backend,
    examples: { count: context.ids.length, ids: context.ids, ...(context.source ? { source: context.source } : {}) },
    cleanAccuracy: share(result.cleanCorrect),
    robustAccuracy: share(result.robust),
    ...('robustWithinEps' in result && parsed.attack === 'cw-l2' && parsed.eps !== undefined
      ? { robustAccuracyWithinEps: share(result.robustWithinEps) }
      : {}),
    ...(context.perExample === false
      ? {}
      : { perExample: { robust: result.robust, margin: Array.from(result.margin), norm: Array.from(result.norm) } }),
    gradientCalls: result.gradientCalls,
    forwardCalls: result.forwardCalls,
    durationMs: context.durationMs,
  });
}

export function autoAttackRecord(
  spec: AutoAttackSpecInput,
  result: AutoAttackResult,
  context: Omit<RecordContext, 'durationMs' | 'perExample'>,
): AutoAttackRecord {
  return AutoAttackRecord.parse({
    spec: AutoAttackSpec.parse(spec),
    implementation: ATTACK_VERSIONS.autoattack,
    backend: context.backend,
    examples: { count: context.ids.length, ids: context.ids, ...(context.source ? { source: context.source } : {}) },
    cleanAccuracy: result.cleanAccuracy,
    robustAccuracy: result.robustAccuracy,
    stages: result.stages,
    brokenBy: result.brokenBy,
    deviations: result.deviations,
    durationMs: result.durationMs,
  });
}
