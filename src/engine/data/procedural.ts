import { BUILTIN_CLASSES, builtinSize, type BuiltinSource, type DatasetDescription } from '@shared/dataset-config';
import { Rng } from '../rng';
import { CHANNELS, checkIndex, type Dataset, type ExampleBatch } from './dataset';
import { hashSeed } from './hash';

/**
 * The built-in dataset: every image is drawn on demand from (seed, split, index), so nothing is
 * stored or downloaded. Each class is a family of structures (gratings of an orientation, shapes,
 * rings, dots); colours, contrast polarity, position, size, rotation, phase, a background gradient,
 * stray strokes and pixel noise vary per image, so raw pixel intensities say little about the class
 * while local structure (what a ViT's patches and attention see) says everything.
 */
export class BuiltinDataset implements Dataset {
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly classDescriptions: readonly string[];
  readonly imageSize: number;
  readonly description: DatasetDescription;
  private readonly seed: number;
  private readonly splitId: number;
  private readonly mask: Float32Array;

  constructor(source: BuiltinSource) {
    this.length = builtinSize(source);
    this.numClasses = source.classes;
    const classes = BUILTIN_CLASSES.slice(0, source.classes);
    this.classNames = classes.map((c) => c.name);
    this.classDescriptions = classes.map((c) => c.description);
    this.imageSize = source.imageSize;
    this.seed = source.seed;
    this.splitId = source.split === 'train' ? 1 : 2;
    this.mask = new Float32Array(this.imageSize * this.imageSize);
    this.description = {
      kind: 'builtin',
      split: source.split,
      location: 'generated',
      summary: `Built-in procedural ${source.split} set: ${this.length.toLocaleString('en-US')} images of ${this.imageSize}x${this.imageSize}, ${this.numClasses} classes, seed ${this.seed} (generated on demand, no download).`,
    };
  }

  labelOf(index: number): number {
    return index % this.numClasses;
  }

  async get(indices: ArrayLike<number>): Promise<ExampleBatch> {
    return this.getSync(indices);
  }

  getSync(indices: ArrayLike<number>): ExampleBatch {
    const pixels = this.imageSize * this.imageSize * CHANNELS;
    const images = new Float32Array(indices.length * pixels);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i] as number;
      checkIndex(this, index);
      labels[i] = this.labelOf(index);
      this.render(index, images, i * pixels);
    }
    return { images, labels };
  }

  /** Draws image `index` into `out` at `offset` (HWC). */
  render(index: number, out: Float32Array, offset: number): void {
    const rng = new Rng(hashSeed(this.seed, this.splitId, index));
    drawImage(this.labelOf(index), this.imageSize, rng, this.mask, out, offset);
  }
}

const TAU = 2 * Math.PI;

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

function between(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}

/** Foreground and background colours with a clear luminance gap; foreground brighter 70% of the time. */
function colourPair(rng: Rng): [number[], number[]] {
  const low = between(rng, 0.05, 0.45);
  const high = between(rng, low + 0.3, 0.95);
  const brightForeground = rng.uniform() < 0.7;
  const tint = (level: number) => [0, 1, 2].map(() => clamp01(level + (rng.uniform() - 0.5) * 0.5));
  const fg = tint(brightForeground ? high : low);
  const bg = tint(brightForeground ? low : high);
  return [fg, bg];
}

/**
 * Fills `mask` (size x size, values in [0, 1]) with the class structure. Coordinates are in the unit
 * square, pixel centres at (x + 0.5) / size; edges are anti-aliased over one pixel via signed distances.
 */
function drawMask(label: number, size: number, rng: Rng, mask: Float32Array): void {
  const px = 1 / size;
  const edge = (d: number) => clamp01(0.5 - d * size);
  const each = (f: (u: number, v: number) => number) => {
    for (let y = 0; y < size; y++) {
      const v = (y + 0.5) * px;
      for (let x = 0; x < size; x++) mask[y * size + x] = f((x + 0.5) * px, v);
    }
  };
  const centre = () => [between(rng, 0.3, 0.7), between(rng, 0.3, 0.7)] as const;
  // A shape's value at each pixel from the pixel's offset (du, dv) to the shape's centre.
  const around = ([cx, cy]: readonly [number, number], f: (du: number, dv: number) => number) =>
    each((u, v) => f(u - cx, v - cy));
  const grating = (theta: number) => {
    const f = TAU * between(rng, 1.5, 4);
    const phase = TAU * rng.uniform();
    const sharp = between(rng, 1, 4);
    const c = Math.cos(theta) * f;
    const s = Math.sin(theta) * f;
    each((u, v) => 0.5 + 0.5 * Math.max(-1, Math.min(1, sharp * Math.sin(c * u + s * v + phase))));
  };
  const jitter = (deg: number) => ((rng.uniform() * 2 - 1) * deg * Math.PI) / 180;
  switch (label) {
    case 0: // horizontal stripes: intensity varies along v
      grating(Math.PI / 2 + jitter(15));
      return;
    case 1:
      grating(jitter(15));
      return;
    case 2:
      grating((rng.uniform() < 0.5 ? Math.PI / 4 : (3 * Math.PI) / 4) + jitter(10));
      return;
    case 3: {
      const f = TAU * between(rng, 1.5, 3.5);
      const theta = rng.uniform() * (Math.PI / 2);
      const c = Math.cos(theta) * f;
      const s = Math.sin(theta) * f;
      const p1 = TAU * rng.uniform();
      const p2 = TAU * rng.uniform();
      const sharp = between(rng, 2, 6);
      each(
        (u, v) =>
          0.5 + 0.5 * Math.max(-1, Math.min(1, sharp * Math.sin(c * u + s * v + p1) * Math.sin(-s * u + c * v + p2))),
      );
      return;
    }
    case 4: {
      const [cx, cy] = [between(rng, 0.25, 0.75), between(rng, 0.25, 0.75)];
      const f = TAU * between(rng, 2.5, 4.5);
      const phase = TAU * rng.uniform();
      const sharp = between(rng, 1, 4);
      each((u, v) => 0.5 + 0.5 * Math.max(-1, Math.min(1, sharp * Math.cos(f * Math.hypot(u - cx, v - cy) + phase))));
      return;
    }
    case 5: {
      const at = centre();
      const r = between(rng, 0.14, 0.3);
      const aspect = between(rng, 0.85, 1.15);
      const psi = rng.uniform() * Math.PI;
      const [cs, sn] = [Math.cos(psi), Math.sin(psi)];
      const [ra, rb] = [r * aspect, r / aspect];
      around(at, (du, dv) => {
        const a = (cs * du + sn * dv) / ra;
        const b = (-sn * du + cs * dv) / rb;
        return edge((Math.sqrt(a * a + b * b) - 1) * r);
      });
      return;
    }
    case 6: {
      const at = centre();
      const h = between(rng, 0.12, 0.25);
      const psi = rng.uniform() * (Math.PI / 2);
      const [cs, sn] = [Math.cos(psi), Math.sin(psi)];
      around(at, (du, dv) => edge(Math.max(Math.abs(cs * du + sn * dv), Math.abs(-sn * du + cs * dv)) - h));
      return;
    }
    case 7: {
      const at = centre();
      const r = between(rng, 0.17, 0.32);
      const psi = rng.uniform() * TAU;
      const normals = [0, 1, 2].map((k) => [Math.cos(psi + (k * TAU) / 3), Math.sin(psi + (k * TAU) / 3)] as const);
      const [n0, n1, n2] = normals as [readonly [number, number], readonly [number, number], readonly [number, number]];
      around(at, (du, dv) =>
        edge(Math.max(n0[0] * du + n0[1] * dv, n1[0] * du + n1[1] * dv, n2[0] * du + n2[1] * dv) - r / 2),
      );
      return;
    }
    case 8: {
      const at = centre();
      const len = between(rng, 0.18, 0.32);
      const half = between(rng, 0.04, 0.07);
      const psi = rng.uniform() * (Math.PI / 2);
      const [cs, sn] = [Math.cos(psi), Math.sin(psi)];
      around(at, (du, dv) => {
        const a = Math.abs(cs * du + sn * dv);
        const b = Math.abs(-sn * du + cs * dv);
        return edge(Math.min(Math.max(a - len, b - half), Math.max(a - half, b - len)));
      });
      return;
    }
    case 9: {
      const count = 4 + rng.int(5);
      const r = between(rng, 0.04, 0.07);
      const dots: number[] = [];
      for (let k = 0; k < count; k++) dots.push(between(rng, 0.1, 0.9), between(rng, 0.1, 0.9));
      each((u, v) => {
        let d = Infinity;
        for (let k = 0; k < dots.length; k += 2)
          d = Math.min(d, Math.hypot(u - (dots[k] as number), v - (dots[k + 1] as number)));
        return edge(d - r);
      });
      return;
    }
    default:
      throw new RangeError(`The built-in dataset has no class ${label}.`);
  }
}

/** Distance from (u, v) to the segment from (ax, ay) to (bx, by). */
function segmentDistance(u: number, v: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const t = clamp01(((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy));
  return Math.hypot(u - ax - t * dx, v - ay - t * dy);
}

function drawImage(label: number, size: number, rng: Rng, mask: Float32Array, out: Float32Array, offset: number): void {
  const [fg, bg] = colourPair(rng);
  const contrast = between(rng, 0.6, 1);
  const gradient = between(rng, 0, 0.2);
  const beta = TAU * rng.uniform();
  const gu = Math.cos(beta) * gradient;
  const gv = Math.sin(beta) * gradient;
  drawMask(label, size, rng, mask);

  const px = 1 / size;
  const [f0, f1, f2] = fg as [number, number, number];
  const [b0, b1, b2] = bg as [number, number, number];
  for (let y = 0; y < size; y++) {
    const v = (y + 0.5) * px - 0.5;
    for (let x = 0; x < size; x++) {
      const g = ((x + 0.5) * px - 0.5) * gu + v * gv;
      const m = mask[y * size + x] as number;
      const w = m * contrast;
      const o = offset + (y * size + x) * CHANNELS;
      out[o] = b0 + (f0 - b0) * w + g;
      out[o + 1] = b1 + (f1 - b1) * w + g;
      out[o + 2] = b2 + (f2 - b2) * w + g;
    }
  }

  // Stray strokes in random colours: present in every class, so they are no cue.
  const strokes = rng.int(3);
  const halfWidth = 0.6 * px;
  for (let k = 0; k < strokes; k++) {
    const ax = rng.uniform();
    const ay = rng.uniform();
    const angle = TAU * rng.uniform();
    const length = between(rng, 0.12, 0.3);
    const bx = ax + Math.cos(angle) * length;
    const by = ay + Math.sin(angle) * length;
    const colour = [rng.uniform(), rng.uniform(), rng.uniform()];
    const x0 = Math.max(0, Math.floor((Math.min(ax, bx) - 2 * px) * size));
    const x1 = Math.min(size - 1, Math.ceil((Math.max(ax, bx) + 2 * px) * size));
    const y0 = Math.max(0, Math.floor((Math.min(ay, by) - 2 * px) * size));
    const y1 = Math.min(size - 1, Math.ceil((Math.max(ay, by) + 2 * px) * size));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const a = clamp01(0.5 - (segmentDistance((x + 0.5) * px, (y + 0.5) * px, ax, ay, bx, by) - halfWidth) * size);
        if (a === 0) continue;
        const o = offset + (y * size + x) * CHANNELS;
        for (let c = 0; c < CHANNELS; c++) out[o + c] = (out[o + c] as number) * (1 - a) + (colour[c] as number) * a;
      }
    }
  }

  // Uniform pixel noise (cheaper than Gaussian, same role), then clip to [0, 1].
  const noise = between(rng, 0.01, 0.06) * Math.sqrt(3) * (2 / 4294967296);
  const end = offset + size * size * CHANNELS;
  for (let o = offset; o < end; o++) {
    out[o] = clamp01((out[o] as number) + (rng.nextUint32() - 2147483648) * noise);
  }
}
