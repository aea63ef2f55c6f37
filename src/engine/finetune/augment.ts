import type { MixupConfig, RandAugmentConfig } from '@shared/finetune-config';
import { CHANNELS } from '../data/dataset';
import type { Rng } from '../rng';

/**
 * Fine-tuning augmentations beyond the loader's pad-crop + flip (paper Table X), on batches of
 * square HWC float images in [0, 1] held in Float32Arrays:
 * - RandAugment as torchvision.transforms.RandAugment (numOps ops drawn uniformly from its 14, at
 *   magnitude bin `magnitude` of `bins`, a random sign for signed ops, nearest-neighbour geometry,
 *   fill 0), applied per image;
 * - MixUp / CutMix as timm's Mixup in batch mode: one lambda per batch, each image mixed with the
 *   batch in reverse order, CutMix's lambda corrected to the box's true area; soft targets
 *   lambda * onehot(y) + (1 - lambda) * onehot(y reversed).
 * Every random choice comes from the caller's Rng, in image order, so a batch repeats.
 */

const OPS = [
  'identity',
  'shear-x',
  'shear-y',
  'translate-x',
  'translate-y',
  'rotate',
  'brightness',
  'color',
  'contrast',
  'sharpness',
  'posterize',
  'solarize',
  'autocontrast',
  'equalize',
] as const;
export type RandAugmentOp = (typeof OPS)[number];
export const RAND_AUGMENT_OPS: readonly RandAugmentOp[] = OPS;

const SIGNED: ReadonlySet<RandAugmentOp> = new Set([
  'shear-x',
  'shear-y',
  'translate-x',
  'translate-y',
  'rotate',
  'brightness',
  'color',
  'contrast',
  'sharpness',
]);

/** torchvision's magnitude table: the value of bin `bin` of `bins` for an op on `size` px images. */
export function opMagnitude(op: RandAugmentOp, bin: number, bins: number, size: number): number {
  const linspace = (lo: number, hi: number) => (bins > 1 ? lo + ((hi - lo) * bin) / (bins - 1) : lo);
  switch (op) {
    case 'shear-x':
    case 'shear-y':
      return linspace(0, 0.3);
    case 'translate-x':
    case 'translate-y':
      return linspace(0, (150 / 331) * size);
    case 'rotate':
      return linspace(0, 30);
    case 'brightness':
    case 'color':
    case 'contrast':
    case 'sharpness':
      return linspace(0, 0.9);
    case 'posterize':
      return 8 - Math.round(bin / ((bins - 1) / 4));
    case 'solarize':
      return linspace(1, 0);
    case 'identity':
    case 'autocontrast':
    case 'equalize':
      return 0;
  }
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** output(x, y) = input(map(x, y)), nearest neighbour, 0 outside. `map` gives source coordinates. */
function remap(
  src: Float32Array,
  out: Float32Array,
  offset: number,
  size: number,
  map: (x: number, y: number) => [number, number],
): void {
  // src holds this one image (from index 0); out the batch (the image at `offset`).
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [sx, sy] = map(x, y);
      const ix = Math.round(sx);
      const iy = Math.round(sy);
      const o = offset + (y * size + x) * CHANNELS;
      if (ix < 0 || iy < 0 || ix >= size || iy >= size) {
        out[o] = 0;
        out[o + 1] = 0;
        out[o + 2] = 0;
      } else {
        const s = (iy * size + ix) * CHANNELS;
        out[o] = src[s] ?? 0;
        out[o + 1] = src[s + 1] ?? 0;
        out[o + 2] = src[s + 2] ?? 0;
      }
    }
  }
}

function grayAt(img: Float32Array, p: number): number {
  return 0.2989 * (img[p] ?? 0) + 0.587 * (img[p + 1] ?? 0) + 0.114 * (img[p + 2] ?? 0);
}

/** ratio * img + (1 - ratio) * other, clamped (torchvision's _blend). */
function blend(img: Float32Array, offset: number, pixels: number, ratio: number, other: (i: number) => number): void {
  for (let i = offset; i < offset + pixels * CHANNELS; i++)
    img[i] = clamp01(ratio * (img[i] ?? 0) + (1 - ratio) * other(i));
}

/** torchvision's adjust_sharpness degenerate image: 3x3 smoothing [1 1 1; 1 5 1; 1 1 1] / 13, border kept. */
function smoothed(img: Float32Array, offset: number, size: number): Float32Array {
  const out = img.slice(offset, offset + size * size * CHANNELS);
  for (let y = 1; y < size - 1; y++) {
    for (let x = 1; x < size - 1; x++) {
      for (let c = 0; c < CHANNELS; c++) {
        let sum = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const w = dx === 0 && dy === 0 ? 5 : 1;
            sum += w * (img[offset + ((y + dy) * size + (x + dx)) * CHANNELS + c] ?? 0);
          }
        }
        out[(y * size + x) * CHANNELS + c] = sum / 13;
      }
    }
  }
  return out;
}

/** torchvision's _equalize_single_image per channel, on 8-bit values. */
function equalize(img: Float32Array, offset: number, pixels: number): void {
  for (let c = 0; c < CHANNELS; c++) {
    const hist = new Int32Array(256);
    const value = (i: number) => Math.min(255, Math.max(0, Math.round((img[offset + i * CHANNELS + c] ?? 0) * 255)));
    for (let i = 0; i < pixels; i++) hist[value(i)] = (hist[value(i)] ?? 0) + 1;
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    const step = Math.floor((pixels - (hist[last] ?? 0)) / 255);
    if (step === 0) continue;
    const lut = new Int32Array(256);
    let cumulative = 0;
    for (let v = 0; v < 256; v++) {
      lut[v] = Math.min(255, Math.floor((cumulative + Math.floor(step / 2)) / step));
      cumulative += hist[v] ?? 0;
    }
    for (let i = 0; i < pixels; i++) img[offset + i * CHANNELS + c] = (lut[value(i)] ?? 0) / 255;
  }
}

/** Apply one RandAugment op of value `v` (signed where the op is) to image `index` of `images`, in place. */
export function applyOp(images: Float32Array, index: number, size: number, op: RandAugmentOp, v: number): void {
  const pixels = size * size;
  const offset = index * pixels * CHANNELS;
  const view = (i: number) => offset + i * CHANNELS;
  switch (op) {
    case 'identity':
      return;
    case 'shear-x':
    case 'shear-y':
    case 'translate-x':
    case 'translate-y':
    case 'rotate': {
      const copy = images.slice(offset, offset + pixels * CHANNELS);
      const centre = (size - 1) / 2;
      const rad = (v * Math.PI) / 180;
      const cos = Math.cos(rad);
      const sin = Math.sin(rad);
      const map: (x: number, y: number) => [number, number] =
        op === 'shear-x'
          ? (x, y) => [x + v * y, y]
          : op === 'shear-y'
            ? (x, y) => [x, y + v * x]
            : op === 'translate-x'
              ? (x, y) => [x - v, y]
              : op === 'translate-y'
                ? (x, y) => [x, y - v]
                : (x, y) => [
                    cos * (x - centre) - sin * (y - centre) + centre,
                    sin * (x - centre) + cos * (y - centre) + centre,
                  ];
      remap(copy, images, offset, size, map);
      return;
    }
    case 'brightness':
      blend(images, offset, pixels, 1 + v, () => 0);
      return;
    case 'color': {
      const gray = new Float32Array(pixels);
      for (let i = 0; i < pixels; i++) gray[i] = grayAt(images, view(i));
      blend(images, offset, pixels, 1 + v, (i) => gray[Math.floor((i - offset) / CHANNELS)] ?? 0);
      return;
    }
    case 'contrast': {
      let mean = 0;
      for (let i = 0; i < pixels; i++) mean += grayAt(images, view(i));
      mean /= pixels;
      blend(images, offset, pixels, 1 + v, () => mean);
      return;
    }
    case 'sharpness': {
      if (size < 3) return;
      const degenerate = smoothed(images, offset, size);
      blend(images, offset, pixels, 1 + v, (i) => degenerate[i - offset] ?? 0);
      return;
    }
    case 'posterize': {
      const bits = Math.max(0, Math.min(8, Math.round(v)));
      const mask = (0xff << (8 - bits)) & 0xff;
      for (let i = offset; i < offset + pixels * CHANNELS; i++) {
        images[i] = (Math.min(255, Math.max(0, Math.floor((images[i] ?? 0) * 255))) & mask) / 255;
      }
      return;
    }
    case 'solarize':
      for (let i = offset; i < offset + pixels * CHANNELS; i++) {
        const x = images[i] ?? 0;
        images[i] = x >= v ? 1 - x : x;
      }
      return;
    case 'autocontrast':
      for (let c = 0; c < CHANNELS; c++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let i = 0; i < pixels; i++) {
          const x = images[view(i) + c] ?? 0;
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
        if (hi <= lo) continue;
        for (let i = 0; i < pixels; i++) images[view(i) + c] = clamp01(((images[view(i) + c] ?? 0) - lo) / (hi - lo));
      }
      return;
    case 'equalize':
      equalize(images, offset, pixels);
      return;
  }
}

/** RandAugment over a batch of `count` images of side `size`, in place; returns the ops drawn (for logs/tests). */
export function randAugmentBatch(
  images: Float32Array,
  count: number,
  size: number,
  config: RandAugmentConfig,
  rng: Rng,
): RandAugmentOp[][] {
  const bin = Math.min(config.magnitude, config.bins - 1);
  const drawn: RandAugmentOp[][] = [];
  for (let i = 0; i < count; i++) {
    const ops: RandAugmentOp[] = [];
    for (let k = 0; k < config.numOps; k++) {
      const op = OPS[rng.int(OPS.length)] ?? 'identity';
      let v = opMagnitude(op, bin, config.bins, size);
      if (SIGNED.has(op) && rng.uniform() < 0.5) v = -v;
      applyOp(images, i, size, op, v);
      ops.push(op);
    }
    drawn.push(ops);
  }
  return drawn;
}

/** Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 through Gamma(shape + 1) * U^(1/shape)). */
export function sampleGamma(shape: number, rng: Rng): number {
  if (shape < 1) {
    let u = 0;
    while (u === 0) u = rng.uniform();
    return sampleGamma(shape + 1, rng) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = rng.uniform();
    if (u > 0 && Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export function sampleBeta(a: number, b: number, rng: Rng): number {
  const x = sampleGamma(a, rng);
  const y = sampleGamma(b, rng);
  return x + y > 0 ? x / (x + y) : 0.5;
}

export interface MixedBatch {
  images: Float32Array;
  /** [count, numClasses] rows of class probabilities (not yet label-smoothed). */
  targets: Float32Array;
  /** The class with the larger share of each row (for accuracy and hard-label attacks). */
  labels: Int32Array;
  /** 1 when the batch was left unmixed. */
  lambda: number;
  kind: 'none' | 'mixup' | 'cutmix';
}

export function oneHotRows(labels: ArrayLike<number>, numClasses: number): Float32Array {
  const out = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) out[i * numClasses + (labels[i] ?? 0)] = 1;
  return out;
}

/** timm's Mixup (mode 'batch', correct_lam) on a batch; `config` null leaves it unmixed. */
export function mixBatch(
  images: Float32Array,
  labels: Int32Array,
  size: number,
  numClasses: number,
  config: MixupConfig | null,
  rng: Rng,
): MixedBatch {
  const count = labels.length;
  const unmixed: MixedBatch = { images, targets: oneHotRows(labels, numClasses), labels, lambda: 1, kind: 'none' };
  if (config === null || !(rng.uniform() < config.prob)) return unmixed;
  let cutmix = false;
  let lambda: number;
  if (config.mixupAlpha > 0 && config.cutmixAlpha > 0) {
    cutmix = rng.uniform() < config.switchProb;
    const alpha = cutmix ? config.cutmixAlpha : config.mixupAlpha;
    lambda = sampleBeta(alpha, alpha, rng);
  } else if (config.mixupAlpha > 0) {
    lambda = sampleBeta(config.mixupAlpha, config.mixupAlpha, rng);
  } else if (config.cutmixAlpha > 0) {
    cutmix = true;
    lambda = sampleBeta(config.cutmixAlpha, config.cutmixAlpha, rng);
  } else {
    return unmixed;
  }
  const pixels = size * size * CHANNELS;
  const out = images.slice();
  if (cutmix) {
    const ratio = Math.sqrt(1 - lambda);
    const cut = Math.floor(size * ratio);
    const cy = rng.int(size);
    const cx = rng.int(size);
    const clip = (v: number) => Math.min(Math.max(v, 0), size);
    const [yl, yh, xl, xh] = [
      clip(cy - Math.floor(cut / 2)),
      clip(cy + Math.floor(cut / 2)),
      clip(cx - Math.floor(cut / 2)),
      clip(cx + Math.floor(cut / 2)),
    ];
    for (let i = 0; i < count; i++) {
      const j = count - 1 - i;
      for (let y = yl; y < yh; y++) {
        const row = (y * size + xl) * CHANNELS;
        out.set(images.subarray(j * pixels + row, j * pixels + row + (xh - xl) * CHANNELS), i * pixels + row);
      }
    }
    lambda = 1 - ((yh - yl) * (xh - xl)) / (size * size);
  } else {
    for (let i = 0; i < count; i++) {
      const j = count - 1 - i;
      for (let k = 0; k < pixels; k++) {
        out[i * pixels + k] = (images[i * pixels + k] ?? 0) * lambda + (images[j * pixels + k] ?? 0) * (1 - lambda);
      }
    }
  }
  const targets = new Float32Array(count * numClasses);
  const dominant = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const a = labels[i] ?? 0;
    const b = labels[count - 1 - i] ?? 0;
    targets[i * numClasses + a] = (targets[i * numClasses + a] ?? 0) + lambda;
    targets[i * numClasses + b] = (targets[i * numClasses + b] ?? 0) + 1 - lambda;
    dominant[i] = lambda >= 0.5 ? a : b;
  }
  return { images: out, targets, labels: dominant, lambda, kind: cutmix ? 'cutmix' : 'mixup' };
}
