import sharp from 'sharp';
import { writeFileAtomic } from './atomic-file';

/**
 * Encode images NHWC float32 in [0, 1] as one RGB PNG: a grid of `columns` images per row (default:
 * all in one row, a strip `count * size` wide), any unfilled cells of the last row black.
 */
export async function encodePngStrip(
  images: Float32Array,
  count: number,
  size: number,
  channels = 3,
  columns = count,
): Promise<Buffer> {
  if (images.length !== count * size * size * channels) {
    throw new Error(`encodePngStrip: ${images.length} values are not ${count} images of ${size}x${size}x${channels}`);
  }
  const cols = Math.max(1, Math.min(columns, count));
  const rows = Math.max(1, Math.ceil(count / cols));
  const width = cols * size;
  const height = rows * size;
  const pixels = Buffer.alloc(width * height * channels);
  for (let n = 0; n < count; n++) {
    const left = (n % cols) * size;
    const top = Math.floor(n / cols) * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < channels; c++) {
          const value = images[((n * size + y) * size + x) * channels + c] ?? 0;
          pixels[((top + y) * width + left + x) * channels + c] = Math.round(Math.min(1, Math.max(0, value)) * 255);
        }
      }
    }
  }
  return sharp(pixels, { raw: { width, height, channels: channels as 3 } })
    .png()
    .toBuffer();
}

/**
 * Write images NHWC float32 in [0, 1] side by side as one RGB PNG strip (count * size wide, size high),
 * atomically (temp file + rename), so a reader never sees half a file.
 */
export async function writePngStrip(
  file: string,
  images: Float32Array,
  count: number,
  size: number,
  channels = 3,
): Promise<void> {
  if (images.length !== count * size * size * channels) {
    throw new Error(`writePngStrip: ${images.length} values are not ${count} images of ${size}x${size}x${channels}`);
  }
  const png = await encodePngStrip(images, count, size, channels);
  await writeFileAtomic(file, png);
}
