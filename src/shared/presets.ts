import { z } from 'zod';
import type { FinetuneConfigInput } from './finetune-config';
import type { PretrainConfigInput } from './pretrain-config';

/**
 * Starting points for the new-run form: the paper's recipe and small runs that finish on a laptop
 * CPU. A preset is only a config; the form shows every field it sets and lets the user change them.
 * A fine-tuning preset holds settings only: the checkpoint (and the dataset's kind) stay the ones
 * chosen in the form, and its `dataset` fields apply to the built-in set only.
 */
export const RunPreset = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['pretrain', 'finetune']),
  description: z.string(),
  config: z.record(z.string(), z.unknown()),
});
export type RunPreset = z.infer<typeof RunPreset>;

const quickDemo = (mode: 'mimir' | 'adv-mae' | 'mae'): PretrainConfigInput => ({
  mode,
  model: 'small-cpu',
  dataset: { kind: 'builtin', split: 'train', size: 2000, imageSize: 32 },
  epochs: 5,
  batchSize: 64,
  // nHSIC at lambda 1e-3: the smallest lambda whose MI ends clearly below adv-MAE's in a short run. Fig. 4 in
  // small (micro model, 16 px, 2000 images, 10 epochs, seed 0), last epoch's MI: adv-MAE 16.8; lambda 1e-5 16.7,
  // 1e-4 16.1, 1e-3 9.5 (penalty_share ~1e-2), 1e-2 0.12 with the reconstruction stalled (0.98 against 0.74).
  mi: { estimator: 'nhsic', lambda: 1e-3 },
  optimizer: { baseLr: 1.5e-3, warmupEpochs: 1 },
  checkpointEvery: 1,
  previewEvery: 0,
});

const quickFinetune = {
  method: 'pgd-at',
  dataset: { kind: 'builtin', size: 5000 },
  epochs: 10,
  batchSize: 64,
  threat: { norm: 'linf', eps: 4 },
  attack: { steps: 3 },
  heldOut: { size: 256, pgdSteps: 10, every: 2 },
  checkpointEvery: 5,
} satisfies Omit<FinetuneConfigInput, 'source'>;

export const RUN_PRESETS: RunPreset[] = [
  {
    id: 'quick-demo-mimir',
    name: 'Quick demo: MIMIR',
    kind: 'pretrain',
    description:
      'MIMIR on the built-in dataset with a small ViT (width 64, depth 4): a few minutes on a laptop CPU. ' +
      'nHSIC with λ 1e-3 (the paper’s 1e-5 is sized for 800 epochs and barely moves a run this short): ' +
      'open it in Compare with the adversarial MAE baseline preset and MI(x + δ, z) falls below the baseline’s ' +
      'within the first epochs (Fig. 4), with the penalty about 1% of the loss (penalty_share) and a slightly ' +
      'higher reconstruction loss. Its encoder fine-tunes: from the same setting on the micro model (16 px), PGD-AT for ' +
      '10 epochs on 5,000 images (eps 4/255) reached 29.3% natural and 23.4% PGD-20 accuracy (chance 10%; adv-MAE ' +
      '40.1% / 28.8%); 5 epochs on 2,000 images stayed near chance from either.',
    config: quickDemo('mimir'),
  },
  {
    id: 'quick-demo-adv-mae',
    name: 'Quick demo: adversarial MAE baseline',
    kind: 'pretrain',
    description: 'The same run without the MI penalty (lambda 0): the ablation MIMIR is compared with.',
    config: quickDemo('adv-mae'),
  },
  {
    id: 'quick-demo-mae',
    name: 'Quick demo: MAE baseline',
    kind: 'pretrain',
    description: 'Plain masked autoencoder: no attack, no MI penalty.',
    config: quickDemo('mae'),
  },
  {
    id: 'paper-cifar10-mimir',
    name: 'Paper recipe: MIMIR, ViT-S on CIFAR-10',
    kind: 'pretrain',
    description:
      "Table XV: ViT-S, patch 2, 800 epochs, batch 512, AdamW 1.5e-4 x batch/256, 40 warm-up epochs, eps 8/255, one attack step of 10/255, nHSIC (the authors’ hsic_normalized_cca) with lambda 1e-5. Needs CIFAR-10 and a GPU (about 4 GPU-days of the paper's A6000s).",
    config: {
      mode: 'mimir',
      model: 'vit-s',
      dataset: { kind: 'cifar10', split: 'train', root: '~/.mimir/datasets/cifar10' },
      epochs: 800,
      batchSize: 512,
    } satisfies PretrainConfigInput,
  },
  {
    id: 'quick-finetune',
    name: 'Quick fine-tune: PGD-AT',
    kind: 'finetune',
    description:
      'Adversarial fine-tuning of the chosen checkpoint for 10 epochs on 5,000 built-in images, batch 64: PGD-AT ' +
      'at eps 4/255 with 3 attack steps, and every 2 epochs a held-out check on 256 test images (natural and ' +
      'PGD-10 accuracy). What you will see: the loss falling and the two held-out accuracies per check, against ' +
      'chance at 10%; the time below is measured on this machine. What it reaches depends on the checkpoint: ' +
      'the MIMIR quick demo’s description gives a measured example. ' +
      'Evaluate it afterwards for AutoAttack-style numbers.',
    config: quickFinetune,
  },
];
