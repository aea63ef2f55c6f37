import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { MI_ESTIMATORS, KERNEL_BANDWIDTHS, MiConfig } from '@shared/mi-config';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { backendOption, commandAction } from '../output';

interface MiCommandOptions {
  estimator: string;
  a: string;
  b: string;
  sigma?: string;
  bandwidth?: string;
  alpha?: string;
  epsR?: string;
  json?: boolean;
  backend?: string;
}

function parseNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number)) throw new Error(`${flag} must be a number, got "${value}".`);
  return number;
}

/** The human form: one line. */
export function formatMiResult(r: {
  estimator: string;
  value: number;
  n: number;
  dA: number;
  dB: number;
  backend: string;
}): string {
  return `${r.estimator}(A; B) = ${r.value.toPrecision(7)}  (N ${r.n}, dA ${r.dA}, dB ${r.dB}, backend ${r.backend})`;
}

export function registerMi(program: Command): void {
  program
    .command('mi')
    .description(
      'estimate the mutual information between two .npy matrices (rows are paired samples) with the training code',
    )
    .addOption(new Option('--estimator <name>', 'MI estimator').choices(MI_ESTIMATORS).default('nhsic'))
    .requiredOption('--a <file>', '.npy file of A: N samples along the first axis (float32, float64, int32 or uint8)')
    .requiredOption('--b <file>', '.npy file of B: the same N samples, paired row by row')
    .option('--sigma <number>', 'kernel width, scaled by sqrt(feature dimension) (default 5)')
    .addOption(
      new Option('--bandwidth <kind>', 'fixed (sigma) or median heuristic (default fixed)').choices(KERNEL_BANDWIDTHS),
    )
    .option('--alpha <number>', 'order of the Renyi entropy, above 1 (default 1.01)')
    .option('--eps-r <number>', 'ridge of nhsic (default 1e-5)')
    .option('--json', 'print one JSON object')
    .addOption(backendOption())
    .action(
      commandAction(async (options: MiCommandOptions, json) => {
        const parsed = MiConfig.safeParse({
          estimator: options.estimator,
          sigma: parseNumber('--sigma', options.sigma),
          bandwidth: options.bandwidth,
          alpha: parseNumber('--alpha', options.alpha),
          epsR: parseNumber('--eps-r', options.epsR),
        });
        if (!parsed.success) throw new Error(parsed.error.issues.map((issue) => issue.message).join('; '));
        const config = parsed.data;
        for (const [flag, file] of [
          ['--a', options.a],
          ['--b', options.b],
        ] as const) {
          if (!existsSync(file)) throw new Error(`${flag}: no such file: ${file}`);
        }
        const { readNpy } = await import('@engine/io/npy');
        const [a, b] = await Promise.all([readNpy(options.a), readNpy(options.b)]);
        const describe = (flag: string, shape: number[], data: ArrayLike<number>): { n: number; d: number } => {
          if (shape.length === 0) throw new Error(`${flag}: a scalar has no sample axis; rows are samples.`);
          const n = shape[0] ?? 0;
          const d = shape.slice(1).reduce((p, x) => p * x, 1);
          if (d === 0) throw new Error(`${flag}: the samples are empty (shape (${shape.join(', ')})).`);
          for (let i = 0; i < data.length; i++) {
            if (!Number.isFinite(data[i] as number)) {
              throw new Error(`${flag}: value ${i} (row ${Math.floor(i / d)}) is ${data[i]}; the data must be finite.`);
            }
          }
          return { n, d };
        };
        const shapeA = describe('--a', a.shape, a.data);
        const shapeB = describe('--b', b.shape, b.data);
        if (shapeA.n !== shapeB.n) {
          throw new Error(
            `--a has ${shapeA.n} rows and --b has ${shapeB.n}; the rows must pair up (same number of samples).`,
          );
        }
        if (shapeA.n < 2) throw new Error(`at least 2 samples are needed, the files have ${shapeA.n}.`);

        const { selectBackend } = await import('@engine/backend');
        const report = await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        const tf = await import('@tensorflow/tfjs-core');
        const { mutualInformation } = await import('@engine/mi/mutual-information');
        const value = tf.tidy(() => {
          const ta = tf.tensor(Float32Array.from(a.data), [shapeA.n, shapeA.d]);
          const tb = tf.tensor(Float32Array.from(b.data), [shapeB.n, shapeB.d]);
          return mutualInformation(config.estimator, ta, tb, config).dataSync()[0] ?? Number.NaN;
        });
        if (!Number.isFinite(value)) {
          throw new Error(
            `the ${config.estimator} estimate is ${value}: the data overflow float32 arithmetic (values up to ${largestMagnitude(a.data, b.data)}). Scale the data (e.g. standardise each column) and run it again.`,
          );
        }
        const result = {
          estimator: config.estimator,
          value,
          n: shapeA.n,
          dA: shapeA.d,
          dB: shapeB.d,
          backend: report.chosen,
          config,
        };
        process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${formatMiResult(result)}\n`);
      }),
    );
}

function largestMagnitude(...arrays: ArrayLike<number>[]): number {
  let largest = 0;
  for (const data of arrays) for (let i = 0; i < data.length; i++) largest = Math.max(largest, Math.abs(data[i] ?? 0));
  return largest;
}
