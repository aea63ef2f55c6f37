import { EvaluationReport, type AttackOutcome } from '../../src/shared/evaluation';
import { modelConfigFromPreset } from '../../src/shared/model-config';

const LABELS: Record<string, string> = { pgd20: 'PGD-20', autoattack: 'AutoAttack (standard)', 'cw-l2': 'CW-l2' };

/**
 * A schema-valid evaluation report with the given accuracies (no per-example records): what the
 * store holds after an evaluation, for tests of what is read from it (tables, groups).
 */
export function storedReport(figures: {
  natural: number;
  attacks: Record<string, number>;
  worstCase?: number;
  corruptions?: number;
}): EvaluationReport {
  const examples = { count: 100, ids: [], source: 'builtin/test' };
  const outcome = (key: string, robustAccuracy: number): AttackOutcome => ({
    key,
    label: LABELS[key] ?? key,
    cleanAccuracy: figures.natural,
    robustAccuracy,
    protocol: {
      threat: 'linf',
      eps: 8 / 255,
      eps255: 8,
      attack: key,
      implementation: `${key}/1`,
      steps: 20,
      restarts: 1,
      iterate: 'best',
      seed: 0,
      examples,
      backend: 'cpu',
      inWorstCase: true,
    },
    warnings: [],
    flipped: { count: 0, listed: [], images: null },
    durationMs: 1,
  });
  return EvaluationReport.parse({
    format: 'mimir-evaluation',
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    backend: 'cpu',
    model: {
      checkpoint: '/runs/x/checkpoints/final',
      method: 'pgd-at',
      modelConfig: modelConfigFromPreset('micro', 16),
      numClasses: 10,
      classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    },
    dataset: { kind: 'builtin', split: 'test', location: 'generated', summary: 'built-in' },
    request: {
      checkpoint: '/runs/x/checkpoints/final',
      dataset: { kind: 'builtin', split: 'test' },
      examples: { count: 100 },
      attacks: [{ attack: 'natural' }],
    },
    threat: 'linf',
    eps: 8 / 255,
    eps255: 8,
    examples: { ...examples, pick: 'first', seed: 0 },
    naturalAccuracy: figures.natural,
    attacks: Object.entries(figures.attacks).map(([key, value]) => outcome(key, value)),
    worstCase:
      figures.worstCase === undefined
        ? null
        : {
            robustAccuracy: figures.worstCase,
            attacks: Object.keys(figures.attacks),
            brokenBy: [],
            implementation: 'worst-case/1',
          },
    masking: null,
    corruptions:
      figures.corruptions === undefined
        ? null
        : {
            table: 'cifar10',
            implementation: 'corruptions/1',
            seed: 0,
            examples,
            backend: 'cpu',
            cells: [],
            meanByType: {},
            mean: figures.corruptions,
            durationMs: 1,
          },
    durationMs: 1,
  });
}
