import { describe, expect, it } from 'vitest';
import {
  augmentBatch,
  flipHorizontal,
  padCrop,
  resizeCrop,
  sampleResizedCropBox,
  type CropBox,
} from '../../../src/engine/data/augment';
import { Rng } from '../../../src/engine/rng';
import { AugmentationConfig } from '../../../src/shared/dataset-config';

const S = 12;
const PIX = S * S * 3;

function randomImages(count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: count * PIX }, () => rng.uniform());
}

const at = (img: Float32Array, offset: number, size: number, y: number, x: number, c: number) =>
  img[offset + (y * size + x) * 3 + c] as number;

/** Float64 reference: bilinear with half-pixel centres, clamped, over a box. */
function referenceResize(src: Float32Array, offset: number, size: number, box: CropBox, out: number): number[] {
  const result: number[] = [];
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      for (let c = 0; c < 3; c++) {
        const sy = Math.min(Math.max(((y + 0.5) * box.height) / out - 0.5, 0), box.height - 1);
        const sx = Math.min(Math.max(((x + 0.5) * box.width) / out - 0.5, 0), box.width - 1);
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const y1 = Math.min(y0 + 1, box.height - 1);
        const x1 = Math.min(x0 + 1, box.width - 1);
        const v = (yy: number, xx: number) => at(src, offset, size, box.top + yy, box.left + xx, c);
        const dy = sy - y0;
        const dx = sx - x0;
        result.push((1 - dy) * ((1 - dx) * v(y0, x0) + dx * v(y0, x1)) + dy * ((1 - dx) * v(y1, x0) + dx * v(y1, x1)));
      }
    }
  }
  return result;
}

describe('augmentation on Float32Array NHWC', () => {
  it('flip is a left-right mirror and its own inverse', () => {
    const img = randomImages(1, 1);
    const once = new Float32Array(PIX);
    const twice = new Float32Array(PIX);
    flipHorizontal(img, 0, S, once, 0);
    flipHorizontal(once, 0, S, twice, 0);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++)
        for (let c = 0; c < 3; c++) expect(at(once, 0, S, y, x, c)).toBe(at(img, 0, S, y, S - 1 - x, c));
    expect(twice).toEqual(img);
  });

  it('a resized crop of scale 1 and ratio 1 at full size is the identity', () => {
    const images = randomImages(4, 2);
    const config = AugmentationConfig.parse({ kind: 'random-resized-crop', scale: [1, 1], ratio: [1, 1], flip: false });
    const out = augmentBatch(images, 4, S, config, new Rng(3));
    expect(out).not.toBe(images);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo(images[i] as number, 6);
  });

  it('resizes a crop bilinearly to the output size, matching a float64 reference', () => {
    const img = randomImages(1, 4);
    for (const [box, outSize] of [
      [{ top: 2, left: 3, height: 5, width: 7 }, S],
      [{ top: 0, left: 0, height: S, width: S }, 5],
      [{ top: 6, left: 1, height: 6, width: 4 }, 9],
    ] as const) {
      const out = new Float32Array(outSize * outSize * 3);
      resizeCrop(img, 0, S, box, out, 0, outSize, false);
      const ref = referenceResize(img, 0, S, box, outSize);
      expect(out.length).toBe(ref.length);
      ref.forEach((v, i) => expect(out[i]).toBeCloseTo(v, 5));
      const mirrored = new Float32Array(out.length);
      resizeCrop(img, 0, S, box, mirrored, 0, outSize, true);
      const back = new Float32Array(out.length);
      flipHorizontal(mirrored, 0, outSize, back, 0);
      expect(back).toEqual(out);
    }
  });

  it('keeps a linear ramp linear inside the crop (analytic case)', () => {
    const img = new Float32Array(PIX);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) for (let c = 0; c < 3; c++) img[(y * S + x) * 3 + c] = (x + 2 * y + c) / 40;
    const box = { top: 2, left: 2, height: 8, width: 8 };
    const out = new Float32Array(S * S * 3);
    resizeCrop(img, 0, S, box, out, 0, S, false);
    for (let y = 1; y < S - 1; y++) {
      for (let x = 1; x < S - 1; x++) {
        const sx = 2 + ((x + 0.5) * 8) / S - 0.5;
        const sy = 2 + ((y + 0.5) * 8) / S - 0.5;
        expect(at(out, 0, S, y, x, 1)).toBeCloseTo((sx + 2 * sy + 1) / 40, 5);
      }
    }
  });

  it('samples crop boxes inside the image with the area fraction and aspect ratio asked for', () => {
    const rng = new Rng(5);
    const size = 32;
    let areaSum = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const box = sampleResizedCropBox(size, size, [0.2, 1], [3 / 4, 4 / 3], rng);
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top + box.height).toBeLessThanOrEqual(size);
      expect(box.left + box.width).toBeLessThanOrEqual(size);
      const area = (box.height * box.width) / (size * size);
      // Rounding each side to whole pixels moves the area a little.
      expect(area).toBeGreaterThan(0.2 * 0.8);
      expect(area).toBeLessThanOrEqual(1);
      expect(box.width / box.height).toBeGreaterThan((3 / 4) * 0.85);
      expect(box.width / box.height).toBeLessThan(4 / 3 / 0.85);
      areaSum += area;
    }
    // Uniform area in [0.2, 1] (with the rejections near 1 pulling it down a little): mean near 0.6.
    expect(areaSum / n).toBeGreaterThan(0.5);
    expect(areaSum / n).toBeLessThan(0.65);
    // An impossible ratio falls back to a centre crop with the ratio clamped.
    expect(sampleResizedCropBox(size, size, [0.9, 1], [3, 4], new Rng(1))).toEqual({
      top: 10,
      left: 0,
      height: 11,
      width: 32,
    });
  });

  it('pads with zeros and crops at an offset (weak fine-tuning augmentation)', () => {
    const img = randomImages(1, 6);
    const out = new Float32Array(PIX);
    padCrop(img, 0, S, 4, 1, 6, false, out, 0);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const sy = y + 1 - 4;
        const sx = x + 6 - 4;
        const inside = sy >= 0 && sy < S && sx >= 0 && sx < S;
        for (let c = 0; c < 3; c++) expect(at(out, 0, S, y, x, c)).toBe(inside ? at(img, 0, S, sy, sx, c) : 0);
      }
    }
    const centre = new Float32Array(PIX);
    padCrop(img, 0, S, 4, 4, 4, false, centre, 0);
    expect(centre).toEqual(img);
  });

  it('flips about half of a batch, each image either kept or mirrored, and repeats for a generator state', () => {
    const count = 200;
    const images = randomImages(count, 7);
    const config = AugmentationConfig.parse({ kind: 'pad-crop', padding: 0, flip: true });
    const out = augmentBatch(images, count, S, config, new Rng(8));
    const mirrored = new Float32Array(PIX);
    let flipped = 0;
    for (let i = 0; i < count; i++) {
      const o = out.subarray(i * PIX, (i + 1) * PIX);
      flipHorizontal(images, i * PIX, S, mirrored, 0);
      const same = o.every((v, k) => v === images[i * PIX + k]);
      const mirror = o.every((v, k) => v === mirrored[k]);
      expect(same || mirror).toBe(true);
      if (mirror) flipped++;
    }
    expect(flipped).toBeGreaterThan(70);
    expect(flipped).toBeLessThan(130);
    expect(augmentBatch(images, count, S, config, new Rng(8))).toEqual(out);
    expect(augmentBatch(images, count, S, config, new Rng(9))).not.toEqual(out);
  });

  it('outputs images of the input size in [0, 1] for the spec defaults', () => {
    const images = randomImages(16, 10);
    for (const kind of ['random-resized-crop', 'pad-crop'] as const) {
      const out = augmentBatch(images, 16, S, AugmentationConfig.parse({ kind }), new Rng(11));
      expect(out.length).toBe(images.length);
      for (const v of out) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
  });
});
