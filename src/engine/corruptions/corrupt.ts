import sharp from 'sharp';
import type { CorruptionTable, CorruptionType } from '@shared/evaluation';
import { exampleStreams } from '../attacks/streams';
import type { Rng } from '../rng';
import { clampIndex, diskKernel, filter2d, gaussianKernel1d, separableFilter, boxResize } from './filters';
import { poisson } from './sampling';
import { SEVERITY_TABLES } from './tables';

/**
 * Common corruptions (Hendrycks & Dietterich, ICLR 2019) of NHWC float images in [0, 1], following
 * their generation scripts with the severity tables of tables.ts. Each image draws its randomness
 * from its own stream keyed by (seed, example id, corruption, severity), so a corrupted example is
 * the same in any batch. The scripts store uint8 images; here only JPEG quantises (it must), the
 * others stay float.
 */
export interface CorruptOptions {
  table: CorruptionTable;
  seed?: number;
  /** Identity of each image (its index in the split); keys its random stream. Default 0..N-1. */
  ids?: ArrayLike<number>;
}

const CHANNELS = 3;
const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

function perImage(
  images: Float32Array,
  count: number,
  size: number,
  fn: (image: Float64Array, index: number) => Float64Array,
): Float32Array {
  const pixels = size * size * CHANNELS;
  if (images.length !== count * pixels) {
    throw new Error(`corrupt: ${images.length} values are not ${count} images of ${size}x${size}x${CHANNELS}`);
  }
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    const result = fn(Float64Array.from(images.subarray(n * pixels, (n + 1) * pixels)), n);
    for (let i = 0; i < pixels; i++) out[n * pixels + i] = clip01(result[i] ?? 0);
  }
  return out;
}

function gaussianNoise(image: Float64Array, std: number, rng: Rng): Float64Array {
  return image.map((v) => v + rng.normal() * std);
}

function shotNoise(image: Float64Array, photons: number, rng: Rng): Float64Array {
  return image.map((v) => poisson(rng, v * photons) / photons);
}

/** skimage's random_noise(mode='s&p'): each value flipped with probability `amount`, to 1 or 0 with equal odds. */
function impulseNoise(image: Float64Array, amount: number, rng: Rng): Float64Array {
  return image.map((v) => {
    const flipped = rng.uniform() < amount;
    const salt = rng.uniform() < 0.5;
    return flipped ? (salt ? 1 : 0) : v;
  });
}

/** skimage.filters.gaussian: scipy's gaussian_filter, mode 'nearest', truncate 4, channels apart. */
export function gaussianBlurImage(image: Float64Array, size: number, sigma: number): Float64Array {
  const radius = Math.trunc(4 * sigma + 0.5);
  return separableFilter(image, size, CHANNELS, gaussianKernel1d(sigma, radius), clampIndex);
}

function defocusBlur(image: Float64Array, size: number, [radius, aliasBlur]: readonly [number, number]): Float64Array {
  const { kernel, k } = diskKernel(radius, aliasBlur);
  return filter2d(image, size, CHANNELS, kernel, k);
}

/** (x - mean) * c + mean, the mean per channel over the image. */
function contrast(image: Float64Array, size: number, factor: number): Float64Array {
  const means = [0, 0, 0];
  for (let i = 0; i < image.length; i++) means[i % CHANNELS] = (means[i % CHANNELS] ?? 0) + (image[i] ?? 0);
  const pixels = size * size;
  return image.map((v, i) => {
    const m = (means[i % CHANNELS] ?? 0) / pixels;
    return (v - m) * factor + m;
  });
}

/**
 * The scripts add c to V in HSV and convert back. With hue and saturation fixed, RGB is V times a
 * function of (H, S), so the result is RGB * min(V + c, 1) / V; a black pixel (V = 0, S = 0)
 * becomes grey at min(c, 1).
 */
function brightness(image: Float64Array, amount: number): Float64Array {
  const out = new Float64Array(image.length);
  for (let p = 0; p < image.length; p += CHANNELS) {
    const r = image[p] ?? 0;
    const g = image[p + 1] ?? 0;
    const b = image[p + 2] ?? 0;
    const v = Math.max(r, g, b);
    const target = Math.min(Math.max(v + amount, 0), 1);
    if (v <= 0) out.fill(target, p, p + CHANNELS);
    else {
      const scale = target / v;
      out[p] = r * scale;
      out[p + 1] = g * scale;
      out[p + 2] = b * scale;
    }
  }
  return out;
}

/** Shrink to int(size * c) and back with Pillow's BOX filter. */
function pixelate(image: Float64Array, size: number, factor: number): Float64Array {
  const small = Math.max(1, Math.trunc(size * factor));
  return boxResize(boxResize(image, size, CHANNELS, small), small, CHANNELS, size);
}

/** JPEG at the severity's quality (libjpeg tables, 4:2:0 chroma, as PIL's defaults), decoded back. */
async function jpeg(images: Float32Array, count: number, size: number, quality: number): Promise<Float32Array> {
  const pixels = size * size * CHANNELS;
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    const bytes = Buffer.alloc(pixels);
    for (let i = 0; i < pixels; i++) bytes[i] = Math.round(clip01(images[n * pixels + i] ?? 0) * 255);
    const encoded = await sharp(bytes, { raw: { width: size, height: size, channels: CHANNELS } })
      .jpeg({ quality, chromaSubsampling: '4:2:0', mozjpeg: false })
      .toBuffer();
    const decoded = await sharp(encoded).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (decoded.info.width !== size || decoded.info.height !== size || decoded.info.channels !== CHANNELS) {
      throw new Error(`JPEG round trip gave ${decoded.info.width}x${decoded.info.height}x${decoded.info.channels}`);
    }
    for (let i = 0; i < pixels; i++) out[n * pixels + i] = (decoded.data[i] ?? 0) / 255;
  }
  return out;
}

/** Corrupt `count` images [count, size, size, 3] at `severity` (1..5). Returns new images in [0, 1]. */
export async function corruptImages(
  images: Float32Array,
  count: number,
  size: number,
  type: CorruptionType,
  severity: number,
  options: CorruptOptions,
): Promise<Float32Array> {
  if (!Number.isInteger(severity) || severity < 1 || severity > 5) {
    throw new RangeError(`severity must be 1 to 5, got ${severity}`);
  }
  const table = SEVERITY_TABLES[options.table];
  const at = <T>(values: readonly T[]): T => values[severity - 1] as T;
  const ids = options.ids ?? Array.from({ length: count }, (_, i) => i);
  if (ids.length !== count) throw new Error(`corrupt: ${ids.length} ids for ${count} images`);
  const streams = () => exampleStreams(options.seed ?? 0, ids, `corruption:${type}`, severity);
  switch (type) {
    case 'gaussian-noise': {
      const rngs = streams();
      return perImage(images, count, size, (img, n) => gaussianNoise(img, at(table[type]), rngs[n] as Rng));
    }
    case 'shot-noise': {
      const rngs = streams();
      return perImage(images, count, size, (img, n) => shotNoise(img, at(table[type]), rngs[n] as Rng));
    }
    case 'impulse-noise': {
      const rngs = streams();
      return perImage(images, count, size, (img, n) => impulseNoise(img, at(table[type]), rngs[n] as Rng));
    }
    case 'defocus-blur':
      return perImage(images, count, size, (img) => defocusBlur(img, size, at(table[type])));
    case 'gaussian-blur':
      return perImage(images, count, size, (img) => gaussianBlurImage(img, size, at(table[type])));
    case 'contrast':
      return perImage(images, count, size, (img) => contrast(img, size, at(table[type])));
    case 'brightness':
      return perImage(images, count, size, (img) => brightness(img, at(table[type])));
    case 'pixelate':
      return perImage(images, count, size, (img) => pixelate(img, size, at(table[type])));
    case 'jpeg':
      return jpeg(images, count, size, at(table[type]));
  }
}
