import type SharpType from 'sharp';
import { DatasetError } from './dataset';
import { errorMessage } from '@shared/unknown-value';

type Sharp = typeof SharpType;
let sharpLoading: Promise<Sharp> | null = null;

/** sharp (libvips) is loaded on first use, so only image-folder datasets pay for the native library. */
function loadSharp(): Promise<Sharp> {
  sharpLoading ??= import('sharp').then(
    (module) => module.default,
    (error: unknown) => {
      sharpLoading = null;
      throw new DatasetError('invalid', `The image library (sharp) could not be loaded: ${errorMessage(error)}`, null, {
        cause: error,
      });
    },
  );
  return sharpLoading;
}

/**
 * Decodes a JPEG or PNG file to RGB bytes, size x size, HWC: the shorter side is scaled to `size`
 * (Lanczos) and the centre cropped, as a resize + centre crop would. Grey images become RGB, alpha is
 * dropped. Corrupt or truncated data is an error naming the file (libvips warnings alone are not).
 */
export async function decodeImageFile(file: string, size: number): Promise<Uint8Array> {
  const sharp = await loadSharp();
  let data: Buffer;
  let channels: number;
  try {
    const result = await sharp(file, { failOn: 'error' })
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = result.data;
    channels = result.info.channels;
    if (result.info.width !== size || result.info.height !== size) {
      throw new Error(`decoded to ${result.info.width}x${result.info.height}`);
    }
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'ENOENT' || errorMessage(error).startsWith('Input file is missing');
    throw new DatasetError(
      missing ? 'missing' : 'unreadable-image',
      `Cannot read image ${file}: ${errorMessage(error)}`,
      file,
      { cause: error },
    );
  }
  if (channels === 3) return data;
  const rgb = new Uint8Array(size * size * 3);
  for (let p = 0; p < size * size; p++) {
    // 1 channel: grey; 2 would be grey + alpha, but alpha was removed.
    const v = data[p * channels] as number;
    rgb[p * 3] = v;
    rgb[p * 3 + 1] = channels >= 3 ? (data[p * channels + 1] as number) : v;
    rgb[p * 3 + 2] = channels >= 3 ? (data[p * channels + 2] as number) : v;
  }
  return rgb;
}
