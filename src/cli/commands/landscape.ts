import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { epsFrom255 } from '@shared/attack-config';
import { DatasetSource } from '@shared/dataset-config';
import { LANDSCAPE_LOSSES, type LandscapeRequestInput, type LandscapeResult } from '@shared/landscape';
import type { RunEvent } from '@shared/run-events';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { datasetFromArg } from '../dataset-arg';
import { backendOption, positiveInt, positiveNumber, commandAction } from '../output';
import { ctrlCSignal, exitInterrupted } from '../cancel';

interface LandscapeOptions {
  model: string;
  dataset?: string;
  dataRoot?: string;
  imageSize?: number;
  datasetSize?: number;
  split: 'train' | 'test';
  n?: number;
  grid?: number | [number, number];
  span?: [number, number];
  loss?: string;
  eps?: number;
  pgdSteps?: number;
  pgdAlpha?: number;
  seed?: number;
  batch?: number;
  keepBiasNorm?: boolean;
  out?: string;
  json?: boolean;
  backend?: string;
}

/** `21` or `21x11` (alpha points x beta points). */
export function parseGrid(value: string): number | [number, number] {
  const match = /^(\d+)(?:x(\d+))?$/i.exec(value.trim());
  const cols = Number(match?.[1]);
  const rows = match?.[2] === undefined ? cols : Number(match[2]);
  if (!match || cols < 1 || rows < 1) throw new InvalidArgumentError(`expected N or NxM points, got "${value}"`);
  return match[2] === undefined ? cols : [cols, rows];
}

/** `1` (meaning [-1, 1]) or `lo:hi`, e.g. `--span=-0.5:1`. */
export function parseSpan(value: string): [number, number] {
  const parts = value.split(':').map((p) => Number(p.trim()));
  const valid = parts.every((p) => Number.isFinite(p)) && value.trim() !== '';
  if (valid && parts.length === 1 && (parts[0] ?? 0) > 0) return [-(parts[0] ?? 0), parts[0] ?? 0];
  if (valid && parts.length === 2 && (parts[0] ?? 0) < (parts[1] ?? 0)) return [parts[0] ?? 0, parts[1] ?? 0];
  throw new InvalidArgumentError(`expected S > 0 (for [-S, S]) or lo:hi with lo < hi, got "${value}"`);
}

/** The dataset the checkpoint's run trained on (its `dataset` field), on `split`; null when it names none. */
function runDataset(runConfig: unknown, split: 'train' | 'test'): DatasetSource | null {
  if (typeof runConfig !== 'object' || runConfig === null || !('dataset' in runConfig)) return null;
  const parsed = DatasetSource.safeParse(runConfig.dataset);
  return parsed.success ? { ...parsed.data, split } : null;
}

/** Beside the checkpoints of a run (<run>/landscapes/<checkpoint>-<loss>), else next to the checkpoint. */
export function defaultOutDir(checkpoint: string, loss: string): string {
  const parent = path.dirname(checkpoint);
  const name = `${path.basename(checkpoint)}-${loss}`;
  return path.basename(parent) === 'checkpoints'
    ? path.join(path.dirname(parent), 'landscapes', name)
    : path.join(parent, `landscape-${name}`);
}

const SHADES = ' .:-=+*#%@';

/**
 * A text heat map (beta up, alpha right; darker = higher loss, linear between min and max, `?` where
 * the loss is not finite, the centre marked `O` when on the grid) and a summary.
 */
export function formatLandscape(result: LandscapeResult, file: string): string {
  const { min, max } = result;
  const low = min?.value ?? 0;
  const range = (max?.value ?? 0) - low;
  const centreCol = result.alphas.indexOf(0);
  const centreRow = result.betas.indexOf(0);
  const lines: string[] = [];
  for (let r = result.betas.length - 1; r >= 0; r--) {
    const row = result.losses[r] ?? [];
    const cells = row.map((v, c) => {
      if (r === centreRow && c === centreCol) return 'OO';
      if (v === null) return '??';
      const shade =
        SHADES[range > 0 ? Math.min(SHADES.length - 1, Math.floor(((v - low) / range) * SHADES.length)) : 0];
      return `${shade}${shade}`;
    });
    lines.push(`${(result.betas[r] ?? 0).toFixed(2).padStart(6)} |${cells.join('')}|`);
  }
  const first = result.alphas[0] ?? 0;
  const last = result.alphas.at(-1) ?? 0;
  const width = 2 * result.alphas.length;
  const axis = `${first.toFixed(2)}${last.toFixed(2).padStart(Math.max(1, width - first.toFixed(2).length))}`;
  lines.push(`${' '.repeat(7)} ${axis}   (alpha right, beta up)`);
  const p = result.protocol;
  const at = (e: LandscapeResult['min']) => (e ? `${e.value.toPrecision(5)} at (${e.alpha}, ${e.beta})` : 'none');
  const accuracy = result.accuracy?.[centreRow]?.[centreCol];
  lines.push(
    `loss ${p.loss}${p.pgd ? ` (PGD-${p.pgd.steps}, eps ${(p.pgd.eps * 255).toFixed(2)}/255)` : ''} on ${p.examples} examples, ` +
      `shades "${SHADES}" from ${low.toPrecision(5)} to ${(max?.value ?? 0).toPrecision(5)}`,
    `min ${at(min)}; max ${at(max)}`,
    result.centre !== null
      ? `centre (the checkpoint): ${result.centre.toPrecision(5)}${accuracy !== undefined ? `, accuracy ${(100 * accuracy).toFixed(2)}%` : ''}`
      : 'centre not on the grid',
    `${result.alphas.length} x ${result.betas.length} points in ${result.seconds.toFixed(1)} s on ${p.backend}; written to ${file}`,
  );
  return `${lines.join('\n')}\n`;
}

function progressRenderer(stream: NodeJS.WriteStream = process.stderr): (event: RunEvent) => void {
  const tty = stream.isTTY === true;
  return (event) => {
    if (event.type === 'log')
      stream.write(`${tty ? '\r\x1b[2K' : ''}${event.level === 'info' ? '' : `${event.level}: `}${event.message}\n`);
    if (event.type === 'progress') {
      const width = 24;
      const filled = Math.round((event.step / event.totalSteps) * width);
      const text = `row ${event.epoch}/${event.epochs} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${event.step}/${event.totalSteps} points, ETA ${Math.round(event.etaSeconds)} s`;
      stream.write(tty ? `\r\x1b[2K${text}` : `${text}\n`);
      if (tty && event.step === event.totalSteps) stream.write('\n');
    }
  };
}

export function registerLandscape(program: Command): void {
  program
    .command('landscape')
    .description('plot the loss landscape of a checkpoint along two filter-normalised random directions (paper Fig. 7)')
    .requiredOption(
      '--model <checkpoint>',
      'a checkpoint directory, a folder of checkpoints, or a run folder (its newest good checkpoint)',
    )
    .option(
      '--dataset <name>',
      "builtin, cifar10, or an image folder (default: the dataset of the checkpoint's run, else builtin)",
    )
    .option('--data-root <dir>', 'where cifar10 lives (default ~/.mimir/datasets/cifar10)')
    .option(
      '--image-size <px>',
      "image side for an image folder or the built-in set (default: the model's)",
      positiveInt,
    )
    .option('--dataset-size <n>', 'images of the built-in set', positiveInt)
    .addOption(new Option('--split <split>', 'dataset split').choices(['train', 'test']).default('test'))
    .option('--n <count>', 'examples: the first N images of the split (default 256)', positiveInt)
    .option('--grid <N|NxM>', 'points along alpha (x beta) (default 21)', parseGrid)
    .option('--span <S|lo:hi>', 'range of alpha and beta, in filter-normalised units (default 1: [-1, 1])', parseSpan)
    .addOption(
      new Option('--loss <kind>', 'ce / pgd-ce for fine-tuned classifiers, recon for pre-training checkpoints').choices(
        LANDSCAPE_LOSSES,
      ),
    )
    .option('--eps <n>', 'pgd-ce: l_inf radius in 1/255 units (default 8)', positiveNumber)
    .option('--pgd-steps <n>', 'pgd-ce: PGD steps per point (default 10)', positiveInt)
    .option('--pgd-alpha <n>', 'pgd-ce: PGD step size in 1/255 units (default 2)', positiveNumber)
    .option('--seed <n>', 'seed of the directions, masks and PGD starts (default 0)', positiveInt)
    .option('--batch <n>', 'batch size (default 64)', positiveInt)
    .option('--keep-bias-norm', 'move biases and LayerNorm parameters too (their direction is the weights themselves)')
    .option('--out <dir>', 'output folder for landscape.json (default: <run>/landscapes/<checkpoint>-<loss>)')
    .option('--json', 'one JSON event per line on stdout, then {"type":"result","path":...} naming landscape.json')
    .addOption(backendOption())
    .action(
      commandAction(async (options: LandscapeOptions, json) => {
        const { resolveCheckpointPath } = await import('@engine/finetune/checkpoint-path');
        const { readManifest } = await import('@engine/checkpoint');
        const checkpoint = await resolveCheckpointPath(options.model);
        const manifest = await readManifest(checkpoint);
        const modelImageSize = (manifest.modelConfig as { imageSize?: unknown } | null)?.imageSize;
        const word = options.dataset ?? 'builtin';
        const imageSize =
          options.imageSize ?? (word === 'builtin' && typeof modelImageSize === 'number' ? modelImageSize : undefined);
        const loss = options.loss ?? (manifest.kind === 'finetune' ? 'ce' : 'recon');
        const request: LandscapeRequestInput = {
          checkpoint,
          dataset:
            (options.dataset === undefined ? runDataset(manifest.runConfig, options.split) : null) ??
            datasetFromArg(word, {
              dataRoot: options.dataRoot,
              imageSize,
              size: options.datasetSize,
              split: options.split,
            }),
          loss: loss as LandscapeRequestInput['loss'],
          ...(options.n !== undefined ? { examples: options.n } : {}),
          ...(options.grid !== undefined ? { grid: options.grid } : {}),
          ...(options.span !== undefined ? { span: options.span } : {}),
          ...(options.seed !== undefined ? { seed: options.seed } : {}),
          ...(options.batch !== undefined ? { batchSize: options.batch } : {}),
          ...(options.keepBiasNorm ? { ignoreBiasNorm: false } : {}),
          pgd: {
            ...(options.eps !== undefined ? { eps: epsFrom255(options.eps) } : {}),
            ...(options.pgdSteps !== undefined ? { steps: options.pgdSteps } : {}),
            ...(options.pgdAlpha !== undefined ? { alpha: epsFrom255(options.pgdAlpha) } : {}),
          },
        };
        const outDir = path.resolve(options.out ?? defaultOutDir(checkpoint, loss));

        const { selectBackend } = await import('@engine/backend');
        const { computeLandscape, landscapeFile, LandscapeCancelledError } = await import('@engine/landscape');
        await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        const render = json ? null : progressRenderer();
        let result: LandscapeResult;
        try {
          result = await computeLandscape(request, {
            outDir,
            signal: ctrlCSignal(),
            emit: (event) => (json ? process.stdout.write(`${JSON.stringify(event)}\n`) : render?.(event)),
          });
        } catch (error) {
          if (error instanceof LandscapeCancelledError) {
            exitInterrupted('cancelled; nothing was written');
          }
          // The engine already printed its `failed` event in --json mode.
          if (json) process.exit(1);
          throw error;
        }
        const file = landscapeFile(outDir);
        process.stdout.write(
          json ? `${JSON.stringify({ type: 'result', path: file })}\n` : formatLandscape(result, file),
        );
      }),
    );
}
