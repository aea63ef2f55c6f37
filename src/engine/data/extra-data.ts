import type { ExtraData } from '@shared/dataset-config';
import { decodeNpy, decodeNpyIntegers, NpyFormatError } from '../io/npy';
import { decodeNpz, NpzFormatError } from '../io/npz';
import { FileReadError, readRegularFile } from '../io/read-file';
import { errorMessage } from '@shared/unknown-value';
import { CHANNELS, checkIndex, DatasetError, type Dataset } from './dataset';

/** What readFile can hold: a larger archive must be cut into a smaller one. */
const MAX_NPZ_BYTES = 2 ** 31 - 1;

/**
 * The generated images of `extraData` (an .npz of uint8 images [N, H, W, 3] under "image" or "x" and
 * integer labels [N] under "label" or "y", EDM's format) as a dataset beside `base`: same image
 * size, labels among base's classes. Held in memory; every problem is a DatasetError that names the
 * file and says what to change.
 */
export async function openExtraData(extra: ExtraData, base: Dataset): Promise<Dataset> {
  const file = extra.path;
  const bad = (message: string) => new DatasetError('invalid', `extraData ${file}: ${message}`, file);
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(file, MAX_NPZ_BYTES);
  } catch (error) {
    if (error instanceof FileReadError && error.code === 'not-found') {
      throw new DatasetError('missing', `extraData: ${file} does not exist; give the path of the .npz file.`, file);
    }
    throw new DatasetError('invalid', `extraData: ${errorMessage(error)}`, file, { cause: error });
  }
  let arrays: Map<string, Uint8Array>;
  try {
    arrays = decodeNpz(bytes);
  } catch (error) {
    if (error instanceof NpzFormatError) throw bad(error.message);
    throw error;
  }
  const pick = (names: string[]): Uint8Array => {
    const name = names.find((n) => arrays.has(n));
    if (name === undefined) {
      throw bad(`no "${names.join('" or "')}" array (it holds ${[...arrays.keys()].join(', ') || 'nothing'}).`);
    }
    return arrays.get(name) as Uint8Array;
  };
  let images: Uint8Array;
  let shape: number[];
  let labels: Int32Array;
  try {
    const decoded = decodeNpy(pick(['image', 'x']));
    if (decoded.dtype !== 'uint8') throw bad(`the images are ${decoded.dtype}; give uint8 pixels 0..255 [N, H, W, 3].`);
    images = decoded.data;
    shape = decoded.shape;
    const decodedLabels = decodeNpyIntegers(pick(['label', 'y']));
    if (decodedLabels.shape.length !== 1) {
      throw bad(`the labels have shape (${decodedLabels.shape.join(', ')}); give one class id per image, shape (N,).`);
    }
    labels = decodedLabels.data;
  } catch (error) {
    if (error instanceof NpyFormatError) throw bad(error.message);
    throw error;
  }
  const [n = 0, h, w, c] = shape;
  if (shape.length !== 4 || c !== CHANNELS || h !== w) {
    throw bad(`the images have shape (${shape.join(', ')}); give square RGB images [N, H, W, 3].`);
  }
  if (h !== base.imageSize) {
    throw bad(`its images are ${h} px but the dataset's are ${base.imageSize} px; resize one to match.`);
  }
  if (labels.length !== n) throw bad(`${n} images but ${labels.length} labels; give one label per image.`);
  if (n === 0) throw bad('it holds no images.');
  const outside = labels.findIndex((label) => label < 0 || label >= base.numClasses);
  if (outside >= 0) {
    throw bad(
      `label ${labels[outside]} (image ${outside}) is not one of the dataset's ${base.numClasses} classes 0..${base.numClasses - 1}.`,
    );
  }
  const perImage = h * w * CHANNELS;
  const dataset: Dataset = {
    length: n,
    numClasses: base.numClasses,
    classNames: base.classNames,
    imageSize: h,
    description: {
      kind: base.description.kind,
      split: 'train',
      location: file,
      summary: `${n} generated ${h} px images from ${file}.`,
    },
    labelOf: (index) => {
      checkIndex(dataset, index);
      return labels[index] as number;
    },
    get: (indices) => {
      const out = new Float32Array(indices.length * perImage);
      const picked = new Int32Array(indices.length);
      Array.from(indices).forEach((index, row) => {
        checkIndex(dataset, index);
        const pixels = images.subarray(index * perImage, (index + 1) * perImage);
        for (let i = 0; i < perImage; i++) out[row * perImage + i] = (pixels[i] as number) / 255;
        picked[row] = labels[index] as number;
      });
      return Promise.resolve({ images: out, labels: picked });
    },
  };
  return dataset;
}
