import { BUILTIN_CLASSES, DatasetSource, type DatasetSourceInput } from '@shared/dataset-config';
import type { DatasetImage, DatasetInfo, DatasetPage } from '@shared/api';
import type { Dataset } from '@engine/data/dataset';

/**
 * The dataset browser's side of the app API: open a dataset source (kept open for the next pages),
 * describe it, and encode a page of images as one PNG sprite sheet. Opening and reading are I/O (or,
 * for the built-in set, a few milliseconds of drawing per page); no tensors are involved.
 */

/** The largest tile a page's sheet holds; larger images are box-downsampled (the full image is one click away). */
const MAX_TILE = 96;
/** Open datasets kept for the next request (CIFAR-10 keeps its 150 MB of records in memory). */
const CACHE_SIZE = 3;

interface OpenedDataset {
  dataset: Dataset;
  /** Indices per class, built on the first filtered request. */
  byClass: Int32Array[] | null;
}

export interface DatasetBrowser {
  describe(source: DatasetSourceInput): Promise<DatasetInfo>;
  page(source: DatasetSourceInput, offset: number, limit: number, label: number | null): Promise<DatasetPage>;
  image(source: DatasetSourceInput, index: number): Promise<DatasetImage>;
}

/** Box-average images NHWC (3 channels) of side `size` down by an integer `factor`. */
export function downsample(images: Float32Array, count: number, size: number, factor: number): Float32Array {
  if (factor <= 1) return images;
  const tile = Math.floor(size / factor);
  const out = new Float32Array(count * tile * tile * 3);
  const area = factor * factor;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < tile; y++) {
      for (let x = 0; x < tile; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < factor; dy++) {
            for (let dx = 0; dx < factor; dx++) {
              sum += images[((n * size + y * factor + dy) * size + x * factor + dx) * 3 + c] ?? 0;
            }
          }
          out[((n * tile + y) * tile + x) * 3 + c] = sum / area;
        }
      }
    }
  }
  return out;
}

export function createDatasetBrowser(): DatasetBrowser {
  const cache = new Map<string, Promise<OpenedDataset>>();

  async function open(input: DatasetSourceInput): Promise<OpenedDataset> {
    const source = DatasetSource.parse(input);
    const key = JSON.stringify(source);
    let opened = cache.get(key);
    if (!opened) {
      opened = (async () => {
        const { openDataset } = await import('@engine/data/open-dataset');
        return { dataset: await openDataset(source), byClass: null };
      })();
      cache.set(key, opened);
      opened.catch(() => cache.delete(key));
      while (cache.size > CACHE_SIZE) {
        const oldest = cache.keys().next().value;
        if (oldest === undefined) break;
        cache.delete(oldest);
      }
    } else {
      // Most recently used last.
      cache.delete(key);
      cache.set(key, opened);
    }
    return opened;
  }

  function classIndex(opened: OpenedDataset): Int32Array[] {
    if (opened.byClass) return opened.byClass;
    const { dataset } = opened;
    const counts = new Int32Array(dataset.numClasses);
    const labels = new Int32Array(dataset.length);
    for (let i = 0; i < dataset.length; i++) {
      const label = dataset.labelOf(i);
      labels[i] = label;
      if (label >= 0 && label < counts.length) counts[label] = (counts[label] ?? 0) + 1;
    }
    const byClass = Array.from(counts, (count) => new Int32Array(count));
    const filled = new Int32Array(dataset.numClasses);
    for (let i = 0; i < labels.length; i++) {
      const label = labels[i] ?? -1;
      const list = byClass[label];
      if (!list) continue;
      list[filled[label] ?? 0] = i;
      filled[label] = (filled[label] ?? 0) + 1;
    }
    opened.byClass = byClass;
    return byClass;
  }

  async function encode(images: Float32Array, count: number, size: number, columns: number): Promise<string> {
    const { encodePngStrip } = await import('@engine/io/png');
    return (await encodePngStrip(images, count, size, 3, columns)).toString('base64');
  }

  return {
    async describe(input) {
      const opened = await open(input);
      const { dataset } = opened;
      const byClass = classIndex(opened);
      return {
        description: dataset.description,
        length: dataset.length,
        numClasses: dataset.numClasses,
        classNames: [...dataset.classNames],
        imageSize: dataset.imageSize,
        classCounts: byClass.map((list) => list.length),
        classInfo:
          dataset.description.kind === 'builtin'
            ? BUILTIN_CLASSES.slice(0, dataset.numClasses).map(({ name, description }) => ({ name, description }))
            : null,
      };
    },

    async page(input, offset, limit, label) {
      const opened = await open(input);
      const { dataset } = opened;
      let pool: ArrayLike<number> | null = null;
      if (label !== null) {
        const list = classIndex(opened)[label];
        if (!list) throw new RangeError(`The dataset has no class ${label} (it has ${dataset.numClasses}).`);
        pool = list;
      }
      const total = pool ? pool.length : dataset.length;
      const start = Math.min(offset, total);
      const count = Math.min(limit, total - start);
      const indices = Array.from({ length: count }, (_, i) => (pool ? (pool[start + i] ?? 0) : start + i));
      const factor = Math.max(1, Math.ceil(dataset.imageSize / MAX_TILE));
      const tileSize = Math.floor(dataset.imageSize / factor);
      const columns = Math.max(1, Math.min(count, 20));
      if (count === 0) {
        return {
          total,
          offset: start,
          indices,
          labels: [],
          columns,
          tileSize,
          imageSize: dataset.imageSize,
          png: null,
        };
      }
      const batch = await dataset.get(indices);
      const tiles = downsample(batch.images, count, dataset.imageSize, factor);
      return {
        total,
        offset: start,
        indices,
        labels: Array.from(batch.labels),
        columns,
        tileSize,
        imageSize: dataset.imageSize,
        png: await encode(tiles, count, tileSize, columns),
      };
    },

    async image(input, index) {
      const { dataset } = await open(input);
      if (!Number.isInteger(index) || index < 0 || index >= dataset.length) {
        throw new RangeError(`Index ${index} is outside the dataset (0..${dataset.length - 1}).`);
      }
      const batch = await dataset.get([index]);
      const label = batch.labels[0] ?? 0;
      return {
        index,
        label,
        className: dataset.classNames[label] ?? String(label),
        imageSize: dataset.imageSize,
        png: await encode(batch.images, 1, dataset.imageSize, 1),
      };
    },
  };
}
