/** How the run page names and orders the engine's metric keys. */
export const METRIC_ORDER = [
  'loss',
  'recon_loss',
  'mi',
  'lr',
  'images_per_s',
  'attack_loss',
  'grad_norm',
  'epoch_loss',
  'epoch_recon_loss',
  'epoch_mi',
];

export const METRIC_TITLES: Record<string, string> = {
  loss: 'Loss',
  recon_loss: 'Reconstruction loss',
  mi: 'Mutual information MI(x + δ, z)',
  lr: 'Learning rate',
  images_per_s: 'Images / s',
  attack_loss: 'Attack loss',
  grad_norm: 'Gradient norm',
  epoch_loss: 'Loss (epoch mean)',
  epoch_recon_loss: 'Reconstruction loss (epoch mean)',
  epoch_mi: 'MI (epoch mean)',
};

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
