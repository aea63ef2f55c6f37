import type { AugmentationConfig } from '@shared/dataset-config';
import type { Rng } from '../rng';
import { CHANNELS } from './dataset';

/** A crop box in pixels: top-left corner (top, left) and its height and width. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * torchvision's RandomResizedCrop.get_params: up to 10 tries at a box of area fraction in `scale`
 * and log-uniform aspect ratio in `ratio` that fits; else a centre crop with the ratio clamped.
 */
export function sampleResizedCropBox(
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Rng,
): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (scale[0] + (scale[1] - scale[0]) * rng.uniform());
    const aspect = Math.exp(logLo + (logHi - logLo) * rng.uniform());
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * Bilinear resize of a box of one HWC image to outSize x outSize (half-pixel centres, edge clamped,
 * as torch's interpolate with align_corners=False). A full-size box at the same size copies exactly.
 */
export function resizeCrop(
  src: Float32Array,
  srcOffset: number,
  srcSize: number,
  box: CropBox,
  out: Float32Array,
  outOffset: number,
  outSize: number,
  flip: boolean,
): void {
  const sy = box.height / outSize;
  const sx = box.width / outSize;
  const x0s = new Int32Array(outSize);
  const x1s = new Int32Array(outSize);
  const fxs = new Float32Array(outSize);
  for (let x = 0; x < outSize; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), box.width - 1);
    const x0 = Math.floor(fx);
    x0s[x] = box.left + x0;
    x1s[x] = box.left + Math.min(x0 + 1, box.width - 1);
    fxs[x] = fx - x0;
  }
  for (let y = 0; y < outSize; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), box.height - 1);
    const y0 = Math.floor(fy);
    const wy = fy - y0;
    const row0 = srcOffset + (box.top + y0) * srcSize * CHANNELS;
    const row1 = srcOffset + (box.top + Math.min(y0 + 1, box.height - 1)) * srcSize * CHANNELS;
    for (let x = 0; x < outSize; x++) {
      const xo = flip ? outSize - 1 - x : x;
      const a = (x0s[xo] as number) * CHANNELS;
      const b = (x1s[xo] as number) * CHANNELS;
      const wx = fxs[xo] as number;
      const o = outOffset + (y * outSize + x) * CHANNELS;
      for (let c = 0; c < CHANNELS; c++) {
        const top = (src[row0 + a + c] as number) * (1 - wx) + (src[row0 + b + c] as number) * wx;
        const bottom = (src[row1 + a + c] as number) * (1 - wx) + (src[row1 + b + c] as number) * wx;
        out[o + c] = top * (1 - wy) + bottom * wy;
      }
    }
  }
}

/** Zero-pad by `padding`, take a size x size window at (dy, dx) of the padded image, optionally mirrored. */
export function padCrop(
  src: Float32Array,
  srcOffset: number,
  size: number,
  padding: number,
  dy: number,
  dx: number,
  flip: boolean,
  out: Float32Array,
  outOffset: number,
): void {
  for (let y = 0; y < size; y++) {
    const sy = y + dy - padding;
    for (let x = 0; x < size; x++) {
      const sx = (flip ? size - 1 - x : x) + dx - padding;
      const o = outOffset + (y * size + x) * CHANNELS;
      if (sy < 0 || sy >= size || sx < 0 || sx >= size) {
        out[o] = 0;
        out[o + 1] = 0;
        out[o + 2] = 0;
      } else {
        const s = srcOffset + (sy * size + sx) * CHANNELS;
        out[o] = src[s] as number;
        out[o + 1] = src[s + 1] as number;
        out[o + 2] = src[s + 2] as number;
      }
    }
  }
}

/** Mirrors one HWC image left-right: a pad-crop with no padding and no shift. */
export function flipHorizontal(
  src: Float32Array,
  srcOffset: number,
  size: number,
  out: Float32Array,
  outOffset: number,
): void {
  padCrop(src, srcOffset, size, 0, 0, 0, true, out, outOffset);
}

/**
 * Augments a batch of `count` square HWC images of side `size` into a new array, drawing every
 * random choice from `rng` in image order (so a batch repeats for the same generator state).
 */
export function augmentBatch(
  images: Float32Array,
  count: number,
  size: number,
  config: AugmentationConfig,
  rng: Rng,
): Float32Array {
  if (config.kind === 'none') return images;
  const pixels = size * size * CHANNELS;
  const out = new Float32Array(count * pixels);
  for (let i = 0; i < count; i++) {
    const offset = i * pixels;
    if (config.kind === 'random-resized-crop') {
      const box = sampleResizedCropBox(size, size, config.scale, config.ratio, rng);
      const flip = config.flip && rng.uniform() < 0.5;
      resizeCrop(images, offset, size, box, out, offset, size, flip);
    } else {
      const span = 2 * config.padding + 1;
      const dy = rng.int(span);
      const dx = rng.int(span);
      const flip = config.flip && rng.uniform() < 0.5;
      padCrop(images, offset, size, config.padding, dy, dx, flip, out, offset);
    }
  }
  return out;
}
