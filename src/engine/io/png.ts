import { rename, writeFile } from 'node:fs/promises';
import sharp from 'sharp';

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
  const width = count * size;
  const pixels = Buffer.alloc(width * size * channels);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < channels; c++) {
          const value = images[((n * size + y) * size + x) * channels + c] ?? 0;
          pixels[(y * width + n * size + x) * channels + c] = Math.round(Math.min(1, Math.max(0, value)) * 255);
        }
      }
    }
  }
  const png = await sharp(pixels, { raw: { width, height: size, channels: channels as 3 } })
    .png()
    .toBuffer();
  const temporary = `${file}.tmp-${process.pid}`;
  await writeFile(temporary, png);
  await rename(temporary, file);
}
