import { describe, expect, it } from 'vitest';
import { MixupConfig, RandAugmentConfig } from '../../../src/shared/finetune-config';
import {
  applyOp,
  mixBatch,
  opMagnitude,
  randAugmentBatch,
  sampleBeta,
  RAND_AUGMENT_OPS,
} from '../../../src/engine/finetune';
import { Rng } from '../../../src/engine/rng';

const SIZE = 8;
const PIXELS = SIZE * SIZE * 3;

function batch(count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: count * PIXELS }, () => rng.uniform());
}

describe('MixUp / CutMix (timm Mixup, batch mode)', () => {
  const labels = Int32Array.from([0, 1, 2, 3]);

  it('off: one-hot targets, images untouched', () => {
    const images = batch(4, 1);
    const out = mixBatch(images, labels, SIZE, 5, null, new Rng(0));
    expect(out.kind).toBe('none');
    expect(out.images).toBe(images);
    expect(Array.from(out.targets.subarray(5, 10))).toEqual([0, 1, 0, 0, 0]);
  });

  it('MixUp: x = lam x + (1 - lam) x[reversed], targets lam y + (1 - lam) y[reversed]', () => {
    const images = batch(4, 2);
    const out = mixBatch(images, labels, SIZE, 5, MixupConfig.parse({ cutmixAlpha: 0 }), new Rng(3));
    expect(out.kind).toBe('mixup');
    const lam = out.lambda;
    expect(lam).toBeGreaterThan(0);
    expect(lam).toBeLessThan(1);
    for (const k of [0, 17, PIXELS - 1]) {
      expect(out.images[PIXELS + k]).toBeCloseTo(
        lam * (images[PIXELS + k] ?? 0) + (1 - lam) * (images[2 * PIXELS + k] ?? 0),
        6,
      );
    }
    // Row 1 mixes label 1 with label 2 (row 2 of the reversed batch).
    expect(out.targets[5 + 1]).toBeCloseTo(lam, 6);
    expect(out.targets[5 + 2]).toBeCloseTo(1 - lam, 6);
    expect(out.labels[1]).toBe(lam >= 0.5 ? 1 : 2);
    // The input is not modified.
    expect(images).toEqual(batch(4, 2));
  });

  it('CutMix: a box from the reversed batch, lambda corrected to the box area', () => {
    const images = batch(4, 4);
    let out = mixBatch(images, labels, SIZE, 5, MixupConfig.parse({ mixupAlpha: 0 }), new Rng(5));
    for (let seed = 6; out.lambda === 1; seed++)
      out = mixBatch(images, labels, SIZE, 5, MixupConfig.parse({ mixupAlpha: 0 }), new Rng(seed));
    expect(out.kind).toBe('cutmix');
    let fromOther = 0;
    for (let p = 0; p < SIZE * SIZE; p++) {
      const own = images[p * 3] === out.images[p * 3];
      const other = images[3 * PIXELS + p * 3] === out.images[p * 3];
      expect(own || other).toBe(true);
      if (other && !own) fromOther++;
    }
    expect(out.lambda).toBeCloseTo(1 - fromOther / (SIZE * SIZE), 6);
    const row = Array.from(out.targets.subarray(0, 5));
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(row[0]).toBeCloseTo(out.lambda, 6);
  });

  it('repeats for the same generator state; Beta draws have the right mean', () => {
    const config = MixupConfig.parse({});
    const a = mixBatch(batch(4, 7), labels, SIZE, 5, config, new Rng(9));
    const b = mixBatch(batch(4, 7), labels, SIZE, 5, config, new Rng(9));
    expect(a.images).toEqual(b.images);
    expect(a.targets).toEqual(b.targets);
    const rng = new Rng(1);
    for (const [alpha, beta] of [
      [0.8, 0.8],
      [1, 1],
      [2, 5],
    ] as const) {
      let sum = 0;
      for (let i = 0; i < 4000; i++) sum += sampleBeta(alpha, beta, rng);
      expect(sum / 4000).toBeCloseTo(alpha / (alpha + beta), 1);
    }
  });
});

describe('RandAugment (torchvision)', () => {
  it("uses torchvision's magnitude table", () => {
    expect(opMagnitude('shear-x', 9, 31, 32)).toBeCloseTo(0.09, 10);
    expect(opMagnitude('translate-y', 9, 31, 32)).toBeCloseTo(((150 / 331) * 32 * 9) / 30, 10);
    expect(opMagnitude('rotate', 9, 31, 32)).toBeCloseTo(9, 10);
    expect(opMagnitude('contrast', 9, 31, 32)).toBeCloseTo(0.27, 10);
    expect(opMagnitude('posterize', 9, 31, 32)).toBe(7);
    expect(opMagnitude('posterize', 30, 31, 32)).toBe(4);
    expect(opMagnitude('solarize', 9, 31, 32)).toBeCloseTo(0.7, 10);
  });

  it('applies ops as their definitions say', () => {
    const image = batch(1, 11);
    const run = (op: (typeof RAND_AUGMENT_OPS)[number], v: number) => {
      const copy = image.slice();
      applyOp(copy, 0, SIZE, op, v);
      return copy;
    };
    expect(run('identity', 0)).toEqual(image);
    run('solarize', 0.5).forEach((v, i) =>
      expect(v).toBeCloseTo((image[i] ?? 0) >= 0.5 ? 1 - (image[i] ?? 0) : (image[i] ?? 0), 6),
    );
    run('posterize', 2).forEach((v, i) => expect(v).toBeCloseTo((Math.floor((image[i] ?? 0) * 255) & 0xc0) / 255, 6));
    const contrast = run('autocontrast', 0);
    for (let c = 0; c < 3; c++) {
      const channel = Array.from({ length: SIZE * SIZE }, (_, p) => contrast[p * 3 + c] ?? 0);
      expect(Math.min(...channel)).toBeCloseTo(0, 6);
      expect(Math.max(...channel)).toBeCloseTo(1, 6);
    }
    // translate-x by +1: each pixel comes from its left neighbour, the first column is fill (0).
    const shifted = run('translate-x', 1);
    for (let y = 0; y < SIZE; y++) {
      expect(shifted[y * SIZE * 3]).toBe(0);
      expect(shifted[(y * SIZE + 3) * 3]).toBe(image[(y * SIZE + 2) * 3]);
    }
    // brightness -0.5 halves; equalize stays in [0, 1].
    run('brightness', -0.5).forEach((v, i) => expect(v).toBeCloseTo((image[i] ?? 0) * 0.5, 6));
    expect(run('equalize', 0).every((v) => v >= 0 && v <= 1)).toBe(true);
    // A rotation by 0 degrees is the identity; by 90 (counter-clockwise, as torchvision) it moves the
    // top-left corner to the bottom-left.
    expect(run('rotate', 0)).toEqual(image);
    const rotated = run('rotate', 90);
    expect(rotated[(SIZE - 1) * SIZE * 3]).toBe(image[0]);
  });

  it('keeps images in [0, 1], only touches its own image, and repeats for the same generator', () => {
    const config = RandAugmentConfig.parse({});
    const images = batch(3, 12);
    const a = images.slice();
    const b = images.slice();
    const opsA = randAugmentBatch(a, 2, SIZE, config, new Rng(4));
    randAugmentBatch(b, 2, SIZE, config, new Rng(4));
    expect(a).toEqual(b);
    expect(opsA.map((ops) => ops.length)).toEqual([2, 2]);
    expect(a.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(a.subarray(2 * PIXELS)).toEqual(images.subarray(2 * PIXELS));
  });
});
