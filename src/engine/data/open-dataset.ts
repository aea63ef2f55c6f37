import { DatasetSource, type DatasetSourceInput } from '@shared/dataset-config';
import { openCifar10, type Cifar10Options } from './cifar10';
import type { Dataset } from './dataset';
import { openImageFolder } from './image-folder';
import { BuiltinDataset } from './procedural';
import { openTinyImageNet } from './tiny-imagenet';

export interface OpenDatasetOptions {
  cifar10?: Cifar10Options;
}

/** Validates a dataset source (filling defaults) and opens it. */
export async function openDataset(input: DatasetSourceInput, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const source = DatasetSource.parse(input);
  switch (source.kind) {
    case 'builtin':
      return new BuiltinDataset(source);
    case 'cifar10':
      return openCifar10(source, options.cifar10);
    case 'folder':
      return openImageFolder(source);
    case 'tiny-imagenet':
      return openTinyImageNet(source);
  }
}
