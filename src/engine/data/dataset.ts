import type { DatasetDescription } from '@shared/dataset-config';

/** Images and labels of some dataset indices: images NHWC float32 in [0, 1], labels class ids. */
export interface ExampleBatch {
  images: Float32Array;
  labels: Int32Array;
}

/**
 * A labelled image dataset read on demand. Only what `get` asks for is decoded or generated, so a
 * dataset can be far larger than memory (an ImageNet folder holds only its file index).
 */
export interface Dataset {
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Images are square: imageSize x imageSize, 3 channels (RGB). */
  readonly imageSize: number;
  readonly description: DatasetDescription;
  /** The label of one index without decoding its image. */
  labelOf(index: number): number;
  /** Images in the order of `indices` (duplicates allowed); NHWC, 3 channels, [0, 1]. */
  get(indices: ArrayLike<number>): Promise<ExampleBatch>;
}

export const CHANNELS = 3;

export type DatasetErrorCode = 'missing' | 'corrupt' | 'checksum' | 'unreadable-image' | 'download' | 'invalid';

/** A bad or missing dataset input; the message says what was wrong and where (a path or URL). */
export class DatasetError extends Error {
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
    readonly where: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DatasetError';
  }
}

export function checkIndex(dataset: { length: number; description: DatasetDescription }, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= dataset.length) {
    throw new RangeError(
      `Index ${index} is outside the ${dataset.description.kind} ${dataset.description.split} set (0..${dataset.length - 1}).`,
    );
  }
}
