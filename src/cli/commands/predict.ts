import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { backendOption, positiveInt, commandAction } from '../output';

interface PredictOptions {
  model: string;
  input: string;
  output?: string;
  batch: number;
  json?: boolean;
  backend?: string;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('class scores (logits) of a fine-tuned classifier for a batch of images in a .npy file')
    .requiredOption('--model <checkpoint>', 'a fine-tuning checkpoint, its checkpoints/ folder or its run folder')
    .requiredOption('--input <file.npy>', 'images NHWC float32 in [0, 1], shape [N, H, W, 3] (or one [H, W, 3])')
    .option('--output <file.npy>', 'also write the logits [N, classes] as float32 .npy')
    .option('--batch <n>', 'images per forward pass', positiveInt, 64)
    .option('--json', 'print one JSON object: shape, logits, predictions, class names')
    .addOption(backendOption())
    .action(
      commandAction(async (options: PredictOptions, json) => {
        if (!existsSync(options.input)) throw new Error(`--input: no such file: ${options.input}`);
        const { readNpy, writeNpy } = await import('@engine/io/npy');
        const array = await readNpy(options.input);
        if (array.dtype !== 'float32' && array.dtype !== 'float64') {
          throw new Error(`--input holds ${array.dtype}; give float32 pixels in [0, 1] (divide uint8 images by 255)`);
        }
        const images = array.data instanceof Float32Array ? array.data : Float32Array.from(array.data);
        const { selectBackend } = await import('@engine/backend');
        const { predictLogits } = await import('@engine/evaluate/predict');
        const report = await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        const result = await predictLogits(options.model, images, array.shape, { batchSize: options.batch });
        if (options.output)
          await writeNpy(options.output, { dtype: 'float32', shape: [...result.shape], data: result.logits });
        const [n, classes] = result.shape;
        const rows = Array.from({ length: n }, (_, i) =>
          Array.from(result.logits.subarray(i * classes, (i + 1) * classes)),
        );
        if (json) {
          process.stdout.write(
            `${JSON.stringify({
              checkpoint: result.checkpoint,
              method: result.method,
              backend: report.chosen,
              shape: result.shape,
              classNames: result.classNames,
              predictions: Array.from(result.predictions),
              logits: rows,
              ...(options.output ? { output: options.output } : {}),
            })}\n`,
          );
        } else {
          const lines = rows.map((row, i) => {
            const p = result.predictions[i] ?? 0;
            return `${String(i).padStart(4)}  ${result.classNames[p] ?? `class ${p}`} (${p})  score ${(row[p] ?? 0).toFixed(4)}`;
          });
          process.stdout.write(
            `${lines.join('\n')}\n${options.output ? `logits [${n}, ${classes}] written to ${options.output}\n` : ''}`,
          );
        }
      }),
    );
}
