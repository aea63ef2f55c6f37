/** How the screens name, order and scale the engine's metric keys. */
export const METRIC_ORDER = [
  'loss',
  'recon_loss',
  'mi',
  'penalty_share',
  'penalty_grad_ratio',
  'clean_acc',
  'adv_acc',
  'heldout_natural_acc',
  'heldout_pgd_acc',
  'train_loss',
  'train_clean_acc',
  'train_adv_acc',
  'lr',
  'images_per_s',
  'attack_loss',
  'grad_norm',
  'epoch_loss',
  'epoch_recon_loss',
  'epoch_mi',
  'sys_gpu_util_pct',
  'sys_gpu_mem_allocated_mib',
  'sys_gpu_mem_peak_mib',
  'sys_gpu_mem_used_mib',
];

export const METRIC_TITLES: Record<string, string> = {
  loss: 'Loss',
  recon_loss: 'Reconstruction loss',
  mi: 'Mutual information MI(x + δ, z)',
  penalty_share: 'MI penalty share λ·MI / recon',
  penalty_grad_ratio: 'MI penalty gradient / recon gradient (encoder)',
  lr: 'Learning rate',
  images_per_s: 'Images / s',
  attack_loss: 'Attack loss',
  grad_norm: 'Gradient norm',
  epoch_loss: 'Loss (epoch mean)',
  epoch_recon_loss: 'Reconstruction loss (epoch mean)',
  epoch_mi: 'MI (epoch mean)',
  clean_acc: 'Clean accuracy (batch)',
  adv_acc: 'Adversarial accuracy (batch)',
  train_loss: 'Loss (epoch mean)',
  train_clean_acc: 'Clean accuracy (epoch, train)',
  train_adv_acc: 'Adversarial accuracy (epoch, train)',
  heldout_natural_acc: 'Held-out natural accuracy',
  heldout_pgd_acc: 'Held-out PGD accuracy',
  natural_accuracy: 'Natural accuracy',
  sys_gpu_util_pct: 'System: GPU utilisation',
  sys_gpu_mem_allocated_mib: 'System: GPU memory allocated by torch',
  sys_gpu_mem_peak_mib: 'System: peak GPU memory allocated by torch',
  sys_gpu_mem_used_mib: 'System: GPU memory used (all processes)',
};

/** The y-axis name of a metric: what it is measured in. */
const METRIC_UNITS: Record<string, string> = {
  loss: 'loss',
  recon_loss: 'MSE',
  epoch_recon_loss: 'MSE',
  mi: 'MI estimate',
  epoch_mi: 'MI estimate',
  penalty_share: 'ratio',
  penalty_grad_ratio: 'ratio',
  lr: 'learning rate',
  images_per_s: 'images / s',
  grad_norm: 'l2 norm',
  sys_gpu_util_pct: '% (nvidia-smi)',
  sys_gpu_mem_allocated_mib: 'MiB',
  sys_gpu_mem_peak_mib: 'MiB',
  sys_gpu_mem_used_mib: 'MiB (nvidia-smi)',
};

/** What a metric is, where its title does not say it all (the chart title's tooltip). */
const METRIC_DESCRIPTIONS: Record<string, string> = {
  mi: 'MI(x + δ, z) by the run’s estimator, recorded in every mode (Fig. 4); it enters the loss in mode mimir only.',
  penalty_share:
    'λ · MI / reconstruction loss, each step: how much of the loss the MI penalty is. Recorded for MIMIR runs with λ > 0 only.',
  penalty_grad_ratio:
    '‖∇ λ·MI‖ / ‖∇ recon‖ on the encoder’s parameters, at step 1 and every mi.penaltyGradEvery steps (an extra backward pass). ' +
    'Under about 1e-5 the penalty does nothing. MIMIR runs with λ > 0 only.',
};

export function metricDescription(key: string): string {
  return METRIC_DESCRIPTIONS[key] ?? key;
}

/** The five charts a pre-training run always shows, even before their first point. */
export const CORE_METRICS = ['loss', 'recon_loss', 'mi', 'lr', 'images_per_s'];

export function sortMetricKeys(keys: readonly string[]): string[] {
  const rank = (key: string) => {
    const index = METRIC_ORDER.indexOf(key);
    return index < 0 ? METRIC_ORDER.length : index;
  };
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export function metricTitle(key: string): string {
  return METRIC_TITLES[key] ?? key;
}

/** Accuracies are fractions in [0, 1], shown as percentages. */
export function isAccuracy(key: string): boolean {
  return key.endsWith('_acc') || key.includes('accuracy');
}

export function metricUnit(key: string): string {
  if (isAccuracy(key)) return 'accuracy';
  return METRIC_UNITS[key] ?? (key.includes('loss') ? 'loss' : '');
}
