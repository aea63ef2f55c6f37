/**
 * Image filters on one HWC float image (square, `size` x `size`, `channels` values per pixel), in
 * plain float64 arithmetic: the corruptions are data, made once per example, not model operations.
 */

/** OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), reflected again for kernels wider than the image. */
export function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  let j = i;
  while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
  return j;
}

/** scipy.ndimage's mode 'nearest' (aaaa|abcd|dddd): the edge value repeats. */
export function clampIndex(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** A normalised 1-D Gaussian of radius `radius`: exp(-x^2 / (2 sigma^2)) for x = -radius..radius. */
export function gaussianKernel1d(sigma: number, radius: number): Float64Array {
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let x = -radius; x <= radius; x++) {
    const w = Math.exp((-0.5 * x * x) / (sigma * sigma));
    k[x + radius] = w;
    sum += w;
  }
  for (let i = 0; i < k.length; i++) k[i] = (k[i] ?? 0) / sum;
  return k;
}

type Border = (i: number, n: number) => number;

/** Separable correlation with the same 1-D kernel along rows and columns (channels kept apart). */
export function separableFilter(
  image: Float64Array,
  size: number,
  channels: number,
  kernel: Float64Array,
  border: Border,
): Float64Array {
  const rows = correlate1d(image, size, channels, kernel, (y, x, t) => y * size + border(x + t, size));
  return correlate1d(rows, size, channels, kernel, (y, x, t) => border(y + t, size) * size + x);
}

/** One pass of a separable filter: `tap(y, x, t)` is the pixel that kernel offset t reads for pixel (y, x). */
function correlate1d(
  src: Float64Array,
  size: number,
  channels: number,
  kernel: Float64Array,
  tap: (y: number, x: number, t: number) => number,
): Float64Array {
  const radius = (kernel.length - 1) / 2;
  const out = new Float64Array(src.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = -radius; t <= radius; t++) {
          acc += (kernel[t + radius] ?? 0) * (src[tap(y, x, t) * channels + c] ?? 0);
        }
        out[(y * size + x) * channels + c] = acc;
      }
    }
  }
  return out;
}

/** 2-D correlation with a square kernel [k x k] centred on each pixel (cv2.filter2D), reflect-101 border. */
export function filter2d(
  image: Float64Array,
  size: number,
  channels: number,
  kernel: Float64Array,
  k: number,
): Float64Array {
  const r = (k - 1) / 2;
  const out = new Float64Array(image.length);
  // Taps with zero weight (most of the padded disk) are skipped.
  const taps: [number, number, number][] = [];
  for (let dy = -r; dy <= r; dy++) {
    for (let dx = -r; dx <= r; dx++) {
      const w = kernel[(dy + r) * k + dx + r] ?? 0;
      if (w !== 0) taps.push([dy, dx, w]);
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (const [dy, dx, w] of taps) {
          acc += w * (image[(reflect101(y + dy, size) * size + reflect101(x + dx, size)) * channels + c] ?? 0);
        }
        out[(y * size + x) * channels + c] = acc;
      }
    }
  }
  return out;
}

/**
 * The defocus kernel of the generation scripts' disk(radius, alias_blur): the indicator of
 * x^2 + y^2 <= radius^2 on the grid -8..8 (or -radius..radius beyond radius 8), normalised, then
 * smoothed by cv2.GaussianBlur with a 3 x 3 (5 x 5 beyond radius 8) kernel of sigma alias_blur.
 */
export function diskKernel(radius: number, aliasBlur: number): { kernel: Float64Array; k: number } {
  const coords: number[] = [];
  if (radius <= 8) for (let v = -8; v <= 8; v++) coords.push(v);
  else for (let v = -radius; v < radius + 1; v++) coords.push(v);
  const k = coords.length;
  const disk = new Float64Array(k * k);
  let sum = 0;
  coords.forEach((y, i) =>
    coords.forEach((x, j) => {
      const inside = x * x + y * y <= radius * radius ? 1 : 0;
      disk[i * k + j] = inside;
      sum += inside;
    }),
  );
  for (let i = 0; i < disk.length; i++) disk[i] = (disk[i] ?? 0) / sum;
  const blur = gaussianKernel1d(aliasBlur, radius <= 8 ? 1 : 2);
  return { kernel: separableFilter(disk, k, 1, blur, reflect101), k };
}

/**
 * Pillow's resampling weights for one axis with its BOX filter (support 0.5, scaled up when
 * shrinking): output pixel i covers input [ (i + 0.5) * scale +- support ].
 */
export function boxResampleWeights(inSize: number, outSize: number): { start: number; weights: Float64Array }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 0.5 * filterScale;
  const out: { start: number; weights: Float64Array }[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const start = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights = new Float64Array(Math.max(end - start, 0));
    let total = 0;
    for (let x = 0; x < weights.length; x++) {
      const t = (x + start - center + 0.5) / filterScale;
      const w = t > -0.5 && t <= 0.5 ? 1 : 0;
      weights[x] = w;
      total += w;
    }
    if (total !== 0) for (let x = 0; x < weights.length; x++) weights[x] = (weights[x] ?? 0) / total;
    out.push({ start, weights });
  }
  return out;
}

/** Resize a square HWC image with Pillow's BOX filter (horizontal pass, then vertical), in float. */
export function boxResize(image: Float64Array, size: number, channels: number, outSize: number): Float64Array {
  const weights = boxResampleWeights(size, outSize);
  const wide = new Float64Array(size * outSize * channels);
  for (let y = 0; y < size; y++) {
    weights.forEach(({ start, weights: w }, x) => {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = 0; t < w.length; t++) acc += (w[t] ?? 0) * (image[(y * size + start + t) * channels + c] ?? 0);
        wide[(y * outSize + x) * channels + c] = acc;
      }
    });
  }
  const out = new Float64Array(outSize * outSize * channels);
  weights.forEach(({ start, weights: w }, y) => {
    for (let x = 0; x < outSize; x++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = 0; t < w.length; t++) acc += (w[t] ?? 0) * (wide[((start + t) * outSize + x) * channels + c] ?? 0);
        out[(y * outSize + x) * channels + c] = acc;
      }
    }
  });
  return out;
}
