import path from 'node:path';
import { Option, type Command } from 'commander';
import { THREAT_MODELS } from '@shared/attack-config';
import {
  attacksFromWords,
  PGD_ITERATES,
  type EvaluationReport,
  type EvaluationRequestInput,
  type PgdIterate,
} from '@shared/evaluation';
import type { DatasetSourceInput } from '@shared/dataset-config';
import {
  EVALUATION_ENGINES,
  encoderKindOf,
  evaluationEngineFor,
  type EvaluationEngine,
} from '@shared/evaluation-engine';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { datasetFromArg } from '../dataset-arg';
import type { RunEvent } from '@shared/run-events';
import { backendOption, positiveInt, commandAction } from '../output';
import { humanRenderer } from '../progress-line';
import { readFlagFile } from '../config-file';
import { ctrlCSignal, exitInterrupted } from '../cancel';

interface EvalOptions {
  model: string;
  dataset?: string;
  split: 'train' | 'test';
  dataRoot?: string;
  imageSize?: number;
  datasetSize?: number;
  attacks: string;
  eps: string;
  n: number;
  pick: 'first' | 'random';
  ids?: string;
  threat: 'linf' | 'l2';
  seed: number;
  batch: number;
  out?: string;
  maskingChecks: boolean;
  pgdKeep: PgdIterate;
  json?: boolean;
  backend?: string;
  engine?: EvaluationEngine;
  device?: 'auto' | 'cpu' | 'cuda';
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;

function protocolSummary(a: EvaluationReport['attacks'][number]): string {
  const p = a.protocol;
  const parts = [
    p.threat ? `${p.threat}` : null,
    p.eps255 !== null ? `eps ${+p.eps255.toFixed(3)}/255` : p.threat ? 'unbounded' : null,
    p.steps !== null ? `${p.steps} ${a.key === 'square' ? 'queries' : 'steps'}` : null,
    p.restarts !== null ? `${p.restarts} restart${p.restarts === 1 ? '' : 's'}` : null,
    p.iterate === 'best' ? 'best iterate per example' : p.iterate === 'last' ? 'last iterate (torchattacks)' : null,
    `seed ${p.seed}`,
    `n ${p.examples.count}`,
    p.implementation,
  ];
  return parts.filter((x) => x !== null).join(', ');
}

/** The human form: a table of attack, robust accuracy, protocol and warnings, then the worst case and corruptions. */
export function formatEvaluationTable(report: EvaluationReport, reportFile: string): string {
  const rows = report.attacks.map((a) => [
    a.label,
    a.robustAccuracyWithinEps !== undefined
      ? `${pct(a.robustAccuracy)} (${pct(a.robustAccuracyWithinEps)} in eps)`
      : pct(a.robustAccuracy),
    protocolSummary(a),
    a.warnings.length > 0 ? `! ${a.warnings.map((w) => w.message).join('; ')}` : '',
  ]);
  if (report.worstCase) {
    rows.push([
      'Worst case (per point)',
      pct(report.worstCase.robustAccuracy),
      `over ${report.worstCase.attacks.join(', ')}`,
      '',
    ]);
  }
  const header = ['attack', 'robust accuracy', 'protocol', 'warnings'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [
    `Natural accuracy ${pct(report.naturalAccuracy)} on ${report.examples.count} examples of ${report.examples.source ?? 'the dataset'} (${report.threat}, eps ${report.eps255}/255, backend ${report.backend})`,
    '',
    // Before the numbers, so nobody reads them first.
    ...report.noEvidence.flatMap((flag) => [`!! ${flag.message}`, '']),
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
  if (report.corruptions) {
    const c = report.corruptions;
    out.push('', `Common corruptions (${c.table} severities), mean accuracy ${pct(c.mean)}:`);
    for (const [type, mean] of Object.entries(c.meanByType)) {
      const cells = c.cells.filter((x) => x.type === type).map((x) => `${x.severity}: ${pct(x.accuracy)}`);
      out.push(`  ${type.padEnd(15)} ${pct(mean).padStart(7)}   (${cells.join(', ')})`);
    }
  }
  if (report.masking && report.masking.warnings.length > 0) {
    out.push('', 'Gradient-masking warnings:', ...report.masking.warnings.map((w) => `  ! ${w.message}`));
  }
  out.push('', `Report: ${reportFile}`);
  return `${out.join('\n')}\n`;
}

function parseEps(value: string): number {
  const eps = Number(value);
  if (value.trim() === '' || !Number.isFinite(eps) || eps <= 0)
    throw new Error(`--eps must be a positive number (1/255 units), got "${value}".`);
  return eps;
}

/** `--ids <file>`: the example ids it lists, as an example selection. */
function exampleIdsFrom(file: string): { count: number; pick: 'ids'; ids: number[] } {
  const text = readFlagFile('--ids', file);
  const words = text.trim().startsWith('[') ? (JSON.parse(text) as unknown[]).map(String) : text.split(/[\s,]+/);
  const ids = words.filter((word) => word.trim() !== '').map((word) => Number(word));
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0);
  if (ids.length === 0 || bad >= 0) {
    throw new Error(
      `--ids ${file}: expected whole numbers >= 0 (a JSON array, or separated by commas or white space)${bad >= 0 ? `; item ${bad + 1} is "${words.filter((w) => w.trim() !== '')[bad]}"` : ''}.`,
    );
  }
  return { count: ids.length, pick: 'ids', ids };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a fine-tuned classifier: natural and robust accuracy, per-point worst case, corruptions')
    .requiredOption('--model <checkpoint>', 'a fine-tuning checkpoint, its checkpoints/ folder or its run folder')
    .option('--dataset <name>', "builtin, cifar10 or an image folder (default: the model's fine-tuning dataset)")
    .addOption(new Option('--split <split>', 'which split to evaluate').choices(['train', 'test']).default('test'))
    .option('--data-root <dir>', 'where cifar10 lives')
    .option('--image-size <px>', 'image side for an image folder or the built-in set', positiveInt)
    .option('--dataset-size <n>', 'images of the built-in set', positiveInt)
    .option(
      '--attacks <list>',
      'comma-separated: natural, pgd20, pgd:<steps>, autoattack, apgd-ce, apgd-t, fab-t, square, cw, cw-l2, cw-linf, pgd-mi, pgd-fea, corruptions',
      'natural,pgd20,autoattack',
    )
    .option('--eps <e>', 'radius in 1/255 units', '8')
    .option('--n <count>', 'examples to evaluate', positiveInt, 1000)
    .addOption(
      new Option('--pick <how>', 'the first n examples, or n drawn with the seed')
        .choices(['first', 'random'])
        .default('first'),
    )
    .addOption(new Option('--threat <norm>', 'threat model').choices(THREAT_MODELS).default('linf'))
    .option('--seed <n>', 'seed of every random draw (attack starts, example sample, corruption noise)', positiveInt, 0)
    .option(
      '--ids <file>',
      'evaluate exactly these split indices: a file holding a JSON array or numbers separated by commas or white space (e.g. RobustBench’s ImageNet subset); replaces --n and --pick',
    )
    .option('--batch <n>', 'examples per batch', positiveInt, 64)
    .option('--out <dir>', 'folder for report.json and the flipped examples (default ./eval-<time>)')
    .addOption(
      new Option(
        '--pgd-keep <iterate>',
        "what pgd20 and pgd:<steps> count: each example's best iterate, or the last one (torchattacks, the paper's protocol)",
      )
        .choices(PGD_ITERATES)
        .default('best'),
    )
    .option('--no-masking-checks', 'skip the gradient-masking checks')
    .option('--json', 'print the report as one JSON object instead of the table')
    .addOption(
      new Option(
        '--engine <engine>',
        'tfjs or torch (natural, PGD and corruptions only); default: torch for the encoders only it runs (ConvNeXt, Swin), else tfjs',
      ).choices(EVALUATION_ENGINES),
    )
    .addOption(new Option('--device <device>', 'torch: auto, cpu or cuda').choices(['auto', 'cpu', 'cuda']))
    .addOption(backendOption())
    .action(
      commandAction(async (options: EvalOptions, json) => {
        const outDir = path.resolve(options.out ?? `eval-${timestamp()}`);
        const { resolveCheckpointPath } = await import('@engine/finetune/checkpoint-path');
        const { readManifest } = await import('@engine/checkpoint');
        const { FinetuneRecord } = await import('@shared/finetune-config');
        const checkpoint = await resolveCheckpointPath(options.model);
        const manifest = await readManifest(checkpoint);
        const record = FinetuneRecord.safeParse(manifest.runConfig);
        const trained = record.success ? record.data.dataset : null;
        const size = options.datasetSize ? { size: options.datasetSize } : {};
        let dataset: DatasetSourceInput;
        if (options.dataset === undefined && trained === null) {
          throw new Error(`${checkpoint} does not say which dataset it was fine-tuned on: give --dataset.`);
        } else if (options.dataset === undefined && trained !== null && trained.kind !== 'builtin') {
          dataset = { ...trained, split: options.split };
        } else if (options.dataset === undefined || options.dataset === 'builtin') {
          // The built-in set as the model saw it: its image size, classes and seed (the test split's own size).
          const builtin = trained?.kind === 'builtin' ? trained : null;
          const modelSize = (manifest.modelConfig as { imageSize?: unknown }).imageSize;
          dataset = {
            kind: 'builtin',
            split: options.split,
            ...(options.imageSize
              ? { imageSize: options.imageSize }
              : typeof modelSize === 'number'
                ? { imageSize: modelSize }
                : {}),
            ...(builtin
              ? { classes: builtin.classes, seed: builtin.seed }
              : record.success
                ? { classes: record.data.numClasses }
                : {}),
            ...size,
          };
        } else {
          dataset = datasetFromArg(options.dataset, {
            dataRoot: options.dataRoot,
            imageSize: options.imageSize,
            split: options.split,
            size: options.datasetSize,
          });
        }
        const request: EvaluationRequestInput = {
          checkpoint,
          dataset,
          examples: options.ids !== undefined ? exampleIdsFrom(options.ids) : { count: options.n, pick: options.pick },
          attacks: attacksFromWords(options.attacks).map((a) =>
            a.attack === 'pgd20' || a.attack === 'pgd' ? { ...a, keep: options.pgdKeep } : a,
          ),
          threat: options.threat,
          eps: parseEps(options.eps),
          seed: options.seed,
          batchSize: options.batch,
          maskingChecks: options.maskingChecks,
          ...(options.engine ? { engine: options.engine } : {}),
        };
        const { engine, line } = evaluationEngineFor(encoderKindOf(manifest.modelConfig), options.engine);
        if (engine === 'torch' && options.backend !== undefined) {
          throw new Error(`--backend chooses a TensorFlow.js backend; ${line} Give --device cpu|cuda instead.`);
        }
        if (engine === 'tfjs' && options.device !== undefined) {
          throw new Error('--device is for the PyTorch engine: add --engine torch.');
        }
        const { evaluate, EvaluationCancelledError } = await import('@engine/evaluate');
        const render = json ? null : humanRenderer();
        let finished = false;
        const run = {
          outDir,
          signal: ctrlCSignal(),
          emit: (event: RunEvent) => {
            // The closing per-attack lines would repeat the table printed below.
            if (event.type === 'progress' && event.step === event.totalSteps) finished = true;
            if (event.type === 'failed' || event.type === 'done' || (finished && event.type === 'log')) return;
            render?.(event);
          },
        };
        // Said where the PyTorch engine takes over; the tfjs engine is the usual one.
        if (!json && engine === 'torch') process.stderr.write(`${line}\n`);
        try {
          let report: EvaluationReport;
          if (engine === 'torch') {
            const { evaluateOnTorch } = await import('@torch/evaluate');
            report = await evaluateOnTorch(request, { ...run, ...(options.device ? { device: options.device } : {}) });
          } else {
            const { selectBackend } = await import('@engine/backend');
            await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
            report = await evaluate(request, run);
          }
          process.stdout.write(
            json ? `${JSON.stringify(report)}\n` : formatEvaluationTable(report, path.join(outDir, 'report.json')),
          );
        } catch (error) {
          const { TorchRunCancelledError } = await import('@torch/launch');
          if (error instanceof EvaluationCancelledError || error instanceof TorchRunCancelledError) {
            exitInterrupted('evaluation cancelled');
          }
          throw error;
        }
      }),
    );
}
