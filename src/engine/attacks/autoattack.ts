import * as tf from '@tensorflow/tfjs-core';
import {
  AutoAttackSpec,
  type AutoAttackComponent,
  type AutoAttackSpecInput,
  type AutoAttackStage,
} from '@shared/attack-config';
import { apgd, apgdTargeted } from './apgd';
import { fabTargeted } from './fab';
import { minClassesFor } from './losses';
import { finishAttack, startAttack } from './oracle';
import { square } from './square';
import { pick, replaceRows, takeRows } from './tracking';
import {
  throwIfAborted,
  type AttackProgress,
  type AttackResult,
  type Classifier,
  type Labels,
  type ThreatModel,
} from './types';

/**
 * AutoAttack (Croce & Hein 2020) as autoattack.py's run_standard_evaluation: the attacks of the spec
 * in order, each only on the examples every earlier attack left correctly classified; an example is
 * broken by the first attack whose adversarial example the model misclassifies, and that example is
 * kept. The result is the per-example worst case over the attacks run.
 */

export interface AutoAttackOptions {
  /** Identity of each example (index in the evaluated split); keys its random streams. Default 0..N-1. */
  ids?: ArrayLike<number>;
  /** Examples per attack call (autoattack.py's bs); results do not depend on it. Default: all at once. */
  batchSize?: number;
  onProgress?: (progress: AttackProgress & { stage: number; stages: number }) => void;
  signal?: AbortSignal;
}

export interface AutoAttackResult {
  /** Per example: the adversarial example that broke it, or x where it stayed robust. Caller disposes. */
  xAdv: tf.Tensor4D;
  cleanCorrect: boolean[];
  robust: boolean[];
  /** 'clean' (misclassified without attack), the attack that broke the example, or null (robust). */
  brokenBy: (string | null)[];
  stages: AutoAttackStage[];
  deviations: string[];
  cleanAccuracy: number;
  robustAccuracy: number;
  margin: Float32Array;
  norm: Float32Array;
  gradientCalls: number;
  forwardCalls: number;
  durationMs: number;
}

type Hooks = {
  ids: Int32Array;
  signal?: AbortSignal;
  onProgress?: (p: AttackProgress) => void;
};

async function runComponent(
  component: AutoAttackComponent,
  model: Classifier,
  x: tf.Tensor4D,
  y: Int32Array,
  threat: ThreatModel,
  eps: number,
  seed: number,
  hooks: Hooks,
): Promise<{ result: AttackResult; targetsUsed?: number }> {
  const common = { threat, eps, seed, ids: hooks.ids, signal: hooks.signal, onProgress: hooks.onProgress };
  switch (component.attack) {
    case 'apgd-ce':
    case 'apgd-dlr':
      return {
        result: await apgd(model, x, y, {
          ...common,
          loss: component.attack === 'apgd-ce' ? 'ce' : 'dlr',
          iterations: component.iterations,
          restarts: component.restarts,
          rho: component.rho,
        }),
      };
    case 'apgd-t': {
      const result = await apgdTargeted(model, x, y, {
        ...common,
        iterations: component.iterations,
        targets: component.targets,
        restarts: component.restarts,
        rho: component.rho,
      });
      return { result, targetsUsed: result.targetsUsed };
    }
    case 'fab-t': {
      const result = await fabTargeted(model, x, y, {
        ...common,
        iterations: component.iterations,
        targets: component.targets,
        restarts: component.restarts,
        alphaMax: component.alphaMax,
        eta: component.eta,
        beta: component.beta,
      });
      return { result, targetsUsed: result.targetsUsed };
    }
    case 'square':
      return {
        result: await square(model, x, y, {
          ...common,
          queries: component.queries,
          pInit: component.pInit,
          restarts: component.restarts,
          rescaleSchedule: false,
        }),
      };
  }
}

function requiredClasses(component: AutoAttackComponent): number {
  if (component.attack === 'apgd-t') return minClassesFor('dlr-targeted');
  if (component.attack === 'apgd-dlr') return minClassesFor('dlr');
  return 2;
}

export async function autoAttack(
  model: Classifier,
  x: tf.Tensor4D,
  labels: Labels,
  specInput: AutoAttackSpecInput,
  options: AutoAttackOptions = {},
): Promise<AutoAttackResult> {
  const started = performance.now();
  const spec = AutoAttackSpec.parse(specInput);
  const start = await startAttack(model, x, labels, options.ids);
  const { y, ids, counter, clean } = start;
  clean.logits.dispose();
  const n = y.length;
  const robust = [...clean.correct];
  const brokenBy: (string | null)[] = clean.correct.map((c) => (c ? null : 'clean'));
  const stages: AutoAttackStage[] = [];
  const deviations: string[] = [];
  let xAdv = tf.clone(x);
  const batchSize = Math.max(1, options.batchSize ?? n);

  try {
    for (const [stageIndex, component] of spec.components.entries()) {
      throwIfAborted(options.signal);
      const stageStart = performance.now();
      const rows = Array.from(y.keys()).filter((i) => robust[i]);
      const accuracy = () => robust.filter(Boolean).length / Math.max(n, 1);
      const needed = requiredClasses(component);
      if (clean.classes < needed) {
        const why = `needs at least ${needed} classes for its loss; the model has ${clean.classes}`;
        deviations.push(`${component.attack} skipped: ${why}`);
        stages.push({
          attack: component.attack,
          robustAccuracy: accuracy(),
          broken: 0,
          attacked: 0,
          skipped: why,
          durationMs: 0,
        });
        continue;
      }
      if (rows.length === 0) {
        stages.push({
          attack: component.attack,
          robustAccuracy: 0,
          broken: 0,
          attacked: 0,
          skipped: 'no robust examples left',
          durationMs: 0,
        });
        continue;
      }
      let broken = 0;
      let targetsUsed: number | undefined;
      for (let from = 0; from < rows.length; from += batchSize) {
        const chunk = rows.slice(from, from + batchSize);
        const xs = takeRows(x, chunk);
        try {
          const { result, targetsUsed: used } = await runComponent(
            component,
            model,
            xs,
            pick(y, chunk),
            spec.threat,
            spec.eps,
            spec.seed,
            {
              ids: pick(ids, chunk),
              signal: options.signal,
              onProgress: (p) => options.onProgress?.({ ...p, stage: stageIndex, stages: spec.components.length }),
            },
          );
          targetsUsed = used;
          counter.gradientCalls += result.gradientCalls;
          counter.forwardCalls += result.forwardCalls;
          const fooled = result.robust.map((r) => !r);
          xAdv = replaceRows(xAdv, chunk, result.xAdv, fooled);
          chunk.forEach((row, j) => {
            if (!fooled[j]) return;
            robust[row] = false;
            brokenBy[row] = component.attack;
            broken++;
          });
          result.xAdv.dispose();
        } finally {
          xs.dispose();
        }
      }
      if (targetsUsed !== undefined && 'targets' in component && targetsUsed < component.targets) {
        deviations.push(
          `${component.attack} used ${targetsUsed} target classes, not ${component.targets}: the model has ${clean.classes} classes`,
        );
      }
      stages.push({
        attack: component.attack,
        robustAccuracy: accuracy(),
        broken,
        attacked: rows.length,
        ...(targetsUsed !== undefined ? { targetsUsed } : {}),
        durationMs: performance.now() - stageStart,
      });
    }
  } catch (error) {
    xAdv.dispose();
    throw error;
  }

  const final = await finishAttack(start, xAdv, spec.threat);
  // The final forward pass is the judge, as the per-attack checks were.
  final.robust.forEach((r, i) => {
    if (r !== robust[i])
      deviations.push(`example ${ids[i]}: prediction at its adversarial example changed on re-evaluation`);
  });
  const robustCount = final.robust.filter(Boolean).length;
  return {
    xAdv: final.xAdv,
    cleanCorrect: clean.correct,
    robust: final.robust,
    brokenBy,
    stages,
    deviations,
    cleanAccuracy: clean.correct.filter(Boolean).length / Math.max(n, 1),
    robustAccuracy: robustCount / Math.max(n, 1),
    margin: final.margin,
    norm: final.norm,
    gradientCalls: final.gradientCalls,
    forwardCalls: final.forwardCalls,
    durationMs: performance.now() - started,
  };
}
