import type { CorruptionTable, CorruptionType } from '@shared/evaluation';

/**
 * Severity parameters of Hendrycks & Dietterich's generation scripts (make_cifar_c.py,
 * make_tinyimagenet_c.py, make_imagenet_c.py in hendrycks/robustness), severity 1..5 left to right.
 *   gaussian-noise: std of the added noise        shot-noise: photons per unit intensity
 *   impulse-noise: share of values replaced       defocus-blur: [disk radius, anti-alias sigma]
 *   gaussian-blur: sigma                          contrast: factor on the deviation from the mean
 *   brightness: added to the HSV value            jpeg: quality            pixelate: resize factor
 */
export interface SeverityTable {
  'gaussian-noise': readonly number[];
  'shot-noise': readonly number[];
  'impulse-noise': readonly number[];
  'defocus-blur': readonly (readonly [number, number])[];
  'gaussian-blur': readonly number[];
  contrast: readonly number[];
  brightness: readonly number[];
  jpeg: readonly number[];
  pixelate: readonly number[];
}

export const SEVERITY_TABLES: Record<CorruptionTable, SeverityTable> = {
  cifar10: {
    'gaussian-noise': [0.04, 0.06, 0.08, 0.09, 0.1],
    'shot-noise': [500, 250, 100, 75, 50],
    'impulse-noise': [0.01, 0.02, 0.03, 0.05, 0.07],
    'defocus-blur': [
      [0.3, 0.4],
      [0.4, 0.5],
      [0.5, 0.6],
      [1, 0.2],
      [1.5, 0.1],
    ],
    'gaussian-blur': [0.4, 0.6, 0.7, 0.8, 1],
    contrast: [0.75, 0.5, 0.4, 0.3, 0.15],
    brightness: [0.05, 0.1, 0.15, 0.2, 0.3],
    jpeg: [80, 65, 58, 50, 40],
    pixelate: [0.95, 0.9, 0.85, 0.75, 0.65],
  },
  'tiny-imagenet': {
    'gaussian-noise': [0.04, 0.08, 0.12, 0.15, 0.18],
    'shot-noise': [250, 100, 50, 30, 15],
    'impulse-noise': [0.01, 0.02, 0.05, 0.08, 0.14],
    'defocus-blur': [
      [0.5, 0.6],
      [1, 0.1],
      [1.5, 0.1],
      [2.5, 0.01],
      [3, 0.1],
    ],
    'gaussian-blur': [0.5, 0.75, 1, 1.25, 1.5],
    contrast: [0.4, 0.3, 0.2, 0.1, 0.05],
    brightness: [0.1, 0.2, 0.3, 0.4, 0.5],
    jpeg: [65, 58, 50, 40, 25],
    pixelate: [0.9, 0.8, 0.7, 0.6, 0.5],
  },
  imagenet: {
    'gaussian-noise': [0.08, 0.12, 0.18, 0.26, 0.38],
    'shot-noise': [60, 25, 12, 5, 3],
    'impulse-noise': [0.03, 0.06, 0.09, 0.17, 0.27],
    'defocus-blur': [
      [3, 0.1],
      [4, 0.5],
      [6, 0.5],
      [8, 0.5],
      [10, 0.5],
    ],
    'gaussian-blur': [1, 2, 3, 4, 6],
    contrast: [0.4, 0.3, 0.2, 0.1, 0.05],
    brightness: [0.1, 0.2, 0.3, 0.4, 0.5],
    jpeg: [25, 18, 15, 10, 7],
    pixelate: [0.6, 0.5, 0.4, 0.3, 0.25],
  },
};

/** The table the scripts used for images of this size: CIFAR-10-C to 32 px, Tiny-ImageNet-C to 64 px, else ImageNet-C. */
export function tableForImageSize(imageSize: number): CorruptionTable {
  if (imageSize <= 32) return 'cifar10';
  if (imageSize <= 64) return 'tiny-imagenet';
  return 'imagenet';
}

export function severityParameter(
  table: CorruptionTable,
  type: CorruptionType,
  severity: number,
): number | readonly [number, number] {
  const values = SEVERITY_TABLES[table][type];
  const value = values[severity - 1];
  if (value === undefined) throw new RangeError(`severity must be 1 to 5, got ${severity}`);
  return value;
}
