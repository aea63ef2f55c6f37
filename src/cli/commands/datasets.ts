import path from 'node:path';
import type { Command } from 'commander';
import { defaultDataRoot, datasetFromArg } from '../dataset-arg';
import { fail, positiveInt } from '../output';

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function registerDatasets(program: Command): void {
  const datasets = program.command('datasets').description('fetch and inspect datasets');

  datasets
    .command('download')
    .argument('<name>', 'cifar10 (the official binary archive, 163 MiB)')
    .description('download a dataset with progress; an interrupted download resumes; the checksum is verified')
    .option('--data-root <dir>', 'where to put it (default ~/.mimir/datasets/cifar10, or $MIMIR_DATA/cifar10)')
    .option('--url <url>', 'a mirror of the official archive (its MD5 is still checked)')
    .option('--json', 'progress and the result as JSON lines')
    .action(async (name: string, options: { dataRoot?: string; url?: string; json?: boolean }) => {
      const json = options.json === true;
      try {
        if (name !== 'cifar10')
          throw new Error(`Cannot download "${name}": only cifar10 is downloadable (give other datasets as folders).`);
        const { downloadCifar10 } = await import('@engine/data/download');
        const dir = options.dataRoot ?? path.join(defaultDataRoot(), 'cifar10');
        const result = await downloadCifar10(dir, {
          ...(options.url ? { url: options.url } : {}),
          onProgress: (progress) => {
            if (json) process.stdout.write(`${JSON.stringify({ type: 'progress', ...progress })}\n`);
            else {
              const of = progress.totalBytes ? ` of ${megabytes(progress.totalBytes)}` : '';
              process.stderr.write(`\r${megabytes(progress.receivedBytes)}${of}`);
            }
          },
        });
        if (json) process.stdout.write(`${JSON.stringify({ type: 'done', ...result })}\n`);
        else
          process.stderr.write(
            `\n${result.alreadyPresent ? 'already there' : 'downloaded and verified'}: ${result.path}\n`,
          );
      } catch (error) {
        fail(error, json);
      }
    });

  datasets
    .command('show')
    .argument('<name>', 'builtin, cifar10, or an image folder')
    .description('what a dataset holds: size, classes, image size, where it comes from')
    .option('--data-root <dir>', 'where cifar10 lives')
    .option('--image-size <px>', 'image side for a folder', positiveInt)
    .option('--split <split>', 'train or test', 'train')
    .option('--json', 'one JSON object')
    .action(async (name: string, options: { dataRoot?: string; imageSize?: number; split: string; json?: boolean }) => {
      const json = options.json === true;
      try {
        if (options.split !== 'train' && options.split !== 'test') throw new Error('--split must be train or test.');
        const { openDataset } = await import('@engine/data');
        const dataset = await openDataset(
          datasetFromArg(name, { dataRoot: options.dataRoot, imageSize: options.imageSize, split: options.split }),
        );
        const summary = {
          ...dataset.description,
          length: dataset.length,
          imageSize: dataset.imageSize,
          classNames: dataset.classNames,
        };
        if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else process.stdout.write(`${summary.summary}\nclasses: ${summary.classNames.join(', ')}\n`);
      } catch (error) {
        fail(error, json);
      }
    });
}
