import type { Run } from '../../src/shared/store-types';
import path from 'node:path';
import { newRunId, type RunStore } from '../../src/store/run-store';
import { storedReport } from './evaluation-report';

/** Figures of one fine-tuning's evaluation: natural, PGD-20, AutoAttack, worst case. */
export interface Figures {
  natural: number;
  pgd20: number;
  autoattack: number;
  worst: number;
}

/**
 * A store holding two seed groups as the paper's Table II has them: MIMIR pre-trainings (lambda
 * 1e-5, three seeds; lambda 1e-3, two seeds), a PGD-AT fine-tuning of each, and an evaluation of
 * each fine-tuning with the given figures. Returns the fine-tuning runs in creation order. With
 * `runsDir`, the pre-trainings have their folders there.
 */
export function seedTableStore(store: RunStore, figures: Figures[], runsDir: string | null = null): Run[] {
  const lambdas = [1e-5, 1e-5, 1e-5, 1e-3, 1e-3];
  const seeds = [0, 1, 2, 0, 1];
  if (figures.length !== lambdas.length) throw new Error(`give ${lambdas.length} figures`);
  return figures.map((f, i) => {
    const id = newRunId();
    const pretrain = store.createRun({
      id,
      // The store derives each run's parent from the folder holding the checkpoint its config names.
      outDir: path.join(runsDir ?? '/runs', id),
      name: `mimir lambda ${lambdas[i]} · seed ${seeds[i]}`,
      kind: 'pretrain',
      config: { mode: 'mimir', epochs: 800, mi: { lambda: lambdas[i] }, seed: seeds[i] },
    });
    const finetuneId = newRunId();
    const finetune = store.createRun({
      id: finetuneId,
      outDir: path.join(runsDir ?? '/runs', finetuneId),
      name: `pgd-at of ${pretrain.name}`,
      kind: 'finetune',
      config: {
        method: 'pgd-at',
        epochs: 100,
        source: { kind: 'pretrained', checkpoint: `${pretrain.outDir}/checkpoints/epoch-0800` },
        seed: seeds[i],
      },
    });
    const evaluation = store.createRun({
      name: `evaluation of ${finetune.name}`,
      kind: 'evaluate',
      config: { checkpoint: `${finetune.outDir}` },
    });
    // An older evaluation first: the table must read the latest one.
    store.addEvaluation(evaluation.id, {
      modelCheckpoint: `${finetune.outDir}`,
      protocol: {},
      results: storedReport({ natural: 0.1, attacks: { pgd20: 0.1, autoattack: 0.1 }, worstCase: 0.1 }),
    });
    store.addEvaluation(evaluation.id, {
      modelCheckpoint: `${finetune.outDir}`,
      protocol: {},
      results: storedReport({
        natural: f.natural,
        attacks: { pgd20: f.pgd20, autoattack: f.autoattack },
        worstCase: f.worst,
      }),
    });
    return finetune;
  });
}

/** Mean and sample std in float64, written out here independently of src/shared/groups.ts. */
export function reference(values: number[]): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (values.length - 1)) };
}

export const FIGURES: Figures[] = [
  { natural: 0.871, pgd20: 0.552, autoattack: 0.511, worst: 0.505 },
  { natural: 0.864, pgd20: 0.549, autoattack: 0.507, worst: 0.503 },
  { natural: 0.868, pgd20: 0.558, autoattack: 0.514, worst: 0.509 },
  { natural: 0.842, pgd20: 0.531, autoattack: 0.49, worst: 0.487 },
  { natural: 0.85, pgd20: 0.527, autoattack: 0.494, worst: 0.49 },
];
