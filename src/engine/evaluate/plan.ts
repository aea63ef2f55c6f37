import {
  ATTACK_VERSIONS,
  AttackSpec,
  attackLabel,
  epsFrom255,
  standardAutoAttack,
  type AttackSpecInput,
  type AutoAttackSpec,
  type ThreatModel,
} from '@shared/attack-config';
import type { CorruptionTable, CorruptionType, EvaluationRequest } from '@shared/evaluation';
import type { MiEstimator } from '@shared/mi-config';
import type { SingleAttackSpec } from '../attacks';
import { tableForImageSize } from '../corruptions';

/** One attack of an evaluation, resolved from the request into an exact attack spec. */
export type PlannedAttack =
  | { kind: 'natural'; key: string; label: string }
  | {
      kind: 'single';
      key: string;
      label: string;
      spec: SingleAttackSpec;
      /** Counted in the per-point worst case (within the requested threat model and radius). */
      inWorstCase: boolean;
      /** CW-l2 under an l_2 threat model: robustness counts only adversarial examples within eps. */
      withinEps: boolean;
      /** PGD-MI: the estimator of its MI term. */
      mi: MiEstimator | null;
    }
  | { kind: 'autoattack'; key: string; label: string; spec: AutoAttackSpec };

export interface CorruptionPlan {
  types: CorruptionType[];
  severities: number[];
  table: CorruptionTable;
}

export interface EvaluationPlan {
  threat: ThreatModel;
  eps: number;
  attacks: PlannedAttack[];
  corruptions: CorruptionPlan | null;
}

function uniqueKey(taken: Set<string>, key: string): string {
  let candidate = key;
  for (let i = 2; taken.has(candidate); i++) candidate = `${key}-${i}`;
  taken.add(candidate);
  return candidate;
}

/** Resolve a request's attack list into specs; throws on combinations that make no sense. */
export function planEvaluation(request: EvaluationRequest, imageSize: number): EvaluationPlan {
  const threat = request.threat;
  const eps = epsFrom255(request.eps);
  const seed = request.seed;
  // The paper's step: 2/255 (l_inf); for l_2 a quarter of the radius, which is 2/255 at eps 8 either way.
  const defaultAlpha = threat === 'linf' ? epsFrom255(2) : eps / 4;
  const alphaOf = (given: number | undefined) => (given === undefined ? defaultAlpha : epsFrom255(given));
  // The PGD family's fields: one random start, as the paper, unless the request says otherwise.
  const pgdFields = (steps: number, alpha: number, randomStart = true, restarts = 1) => ({
    threat,
    eps,
    steps,
    alpha,
    randomStart,
    restarts,
    seed,
  });
  const taken = new Set<string>();
  const attacks: PlannedAttack[] = [];
  let corruptions: CorruptionPlan | null = null;

  const single = (
    key: string,
    input: AttackSpecInput,
    options: Partial<{ inWorstCase: boolean; withinEps: boolean; mi: MiEstimator }> = {},
  ) => {
    const spec = AttackSpec.parse(input);
    if (spec.attack === 'autoattack') throw new Error('internal: AutoAttack is planned on its own');
    attacks.push({
      kind: 'single',
      key: uniqueKey(taken, key),
      label: attackLabel(spec),
      spec,
      inWorstCase: options.inWorstCase ?? true,
      withinEps: options.withinEps ?? false,
      mi: options.mi ?? null,
    });
  };

  for (const request_ of request.attacks) {
    switch (request_.attack) {
      case 'natural':
        attacks.push({ kind: 'natural', key: uniqueKey(taken, 'natural'), label: 'Natural' });
        break;
      case 'pgd20':
        single('pgd20', { attack: 'pgd', ...pgdFields(20, defaultAlpha), keep: request_.keep });
        break;
      case 'pgd':
        single(`pgd${request_.steps}`, {
          attack: 'pgd',
          ...pgdFields(request_.steps, alphaOf(request_.alpha), request_.randomStart, request_.restarts),
          keep: request_.keep,
        });
        break;
      case 'autoattack': {
        const spec = standardAutoAttack(threat, eps, seed);
        attacks.push({ kind: 'autoattack', key: uniqueKey(taken, 'autoattack'), label: attackLabel(spec), spec });
        break;
      }
      case 'apgd-ce':
        single('apgd-ce', {
          attack: 'apgd-ce',
          threat,
          eps,
          iterations: request_.iterations,
          restarts: request_.restarts,
          seed,
        });
        break;
      case 'apgd-t':
      case 'fab-t':
        single(request_.attack, {
          attack: request_.attack,
          threat,
          eps,
          iterations: request_.iterations,
          targets: request_.targets,
          seed,
        });
        break;
      case 'square':
        single('square', { attack: 'square', threat, eps, queries: request_.queries, pInit: request_.pInit, seed });
        break;
      case 'cw': {
        const norms = request_.norm
          ? [request_.norm]
          : threat === 'linf'
            ? (['l2', 'linf'] as const)
            : (['l2'] as const);
        for (const norm of norms) {
          if (norm === 'l2') {
            single(
              'cw-l2',
              {
                attack: 'cw-l2',
                c: request_.c,
                steps: request_.steps ?? 100,
                learningRate: request_.learningRate,
                ...(threat === 'l2' ? { eps } : {}),
                seed,
              },
              { inWorstCase: threat === 'l2', withinEps: threat === 'l2' },
            );
          } else {
            if (threat !== 'linf') throw new Error('CW-linf (PGD on the CW margin loss) needs the l_inf threat model');
            single('cw-linf', { attack: 'pgd', loss: 'margin', ...pgdFields(request_.steps ?? 20, defaultAlpha) });
          }
        }
        break;
      }
      case 'pgd-mi':
        single(
          'pgd-mi',
          {
            attack: 'pgd-mi',
            ...pgdFields(request_.steps, alphaOf(request_.alpha)),
            lambda: request_.lambda,
            estimator: request_.estimator,
            ...(typeof request_.block === 'number' ? { block: request_.block } : {}),
          },
          { mi: request_.estimator },
        );
        break;
      case 'pgd-fea':
        single('pgd-fea', { attack: 'pgd-fea', ...pgdFields(request_.steps, alphaOf(request_.alpha)) });
        break;
      case 'corruptions':
        corruptions = {
          types: [...new Set(request_.types)],
          severities: [...new Set(request_.severities)].sort((a, b) => a - b),
          table: request_.table === 'auto' ? tableForImageSize(imageSize) : request_.table,
        };
        break;
    }
  }
  return { threat, eps, attacks, corruptions };
}

/** Iterations (or queries) and restarts of a spec, for the protocol summary. */
export function stepsAndRestarts(spec: SingleAttackSpec | AutoAttackSpec): {
  steps: number | null;
  restarts: number | null;
} {
  const parsed = AttackSpec.parse(spec);
  switch (parsed.attack) {
    case 'fgsm':
      return { steps: 1, restarts: 1 };
    case 'pgd':
    case 'pgd-mi':
    case 'pgd-fea':
      return { steps: parsed.steps, restarts: parsed.restarts };
    case 'apgd-ce':
    case 'apgd-dlr':
    case 'apgd-t':
    case 'fab-t':
      return { steps: parsed.iterations, restarts: parsed.restarts };
    case 'square':
      return { steps: parsed.queries, restarts: parsed.restarts };
    case 'cw-l2':
      return { steps: parsed.steps, restarts: 1 };
    case 'autoattack':
      return { steps: null, restarts: null };
  }
}

export function implementationOf(spec: SingleAttackSpec | AutoAttackSpec): string {
  return ATTACK_VERSIONS[AttackSpec.parse(spec).attack];
}
