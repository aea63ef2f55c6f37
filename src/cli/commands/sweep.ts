import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { JOB_KINDS } from '@shared/engine-protocol';
import { expandSweep, parseGridArg, parseSeedsArg, type SweepSpecInput } from '@shared/sweep';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import type { Run } from '@shared/store-types';
import { readConfigFile } from '../config-file';
import { backendOption, defaultHome, commandAction } from '../output';
import { exitInterrupted } from '../cancel';

interface SweepOptions {
  config: string;
  grid: string[];
  seeds: string;
  kind: (typeof JOB_KINDS)[number];
  name?: string;
  dryRun?: boolean;
  queueOnly?: boolean;
  json?: boolean;
  dataDir?: string;
  backend?: string;
}

const ENDED = new Set(['done', 'failed', 'cancelled', 'interrupted']);

const line = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

function defaultName(configFile: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `sweep ${path.basename(configFile, '.json')} ${stamp}`;
}

/** Queue the sweep through the app service and wait until every run of it has ended. */
async function runSweep(spec: SweepSpecInput, options: SweepOptions, dataDir: string): Promise<number> {
  const [{ createAppService }, { forkLauncher }] = await Promise.all([
    import('@service/app-service'),
    import('@jobs/channel'),
  ]);
  const forced = readForcedBackend(options.backend, process.env[BACKEND_ENV]);
  const service = createAppService({ launch: forkLauncher, forced, dataDir });
  const json = options.json === true;
  const pending = new Set<string>();
  const failed: Run[] = [];
  let announce: ((run: Run) => void) | null = null;
  const allEnded = new Promise<void>((resolve) => {
    announce = (run) => {
      if (!pending.has(run.id) || !ENDED.has(run.status)) return;
      pending.delete(run.id);
      if (run.status !== 'done') failed.push(run);
      if (json) line({ type: 'run-ended', id: run.id, name: run.name, status: run.status, error: run.error });
      else
        process.stdout.write(`${run.status.padEnd(11)} ${run.id}  ${run.name}${run.error ? `: ${run.error}` : ''}\n`);
      if (pending.size === 0) resolve();
    };
  });
  const stop = service.onPush((message) => {
    if (message.type === 'run-updated') announce?.(message.run);
  });
  const onSignal = (): void => {
    service.close();
    exitInterrupted("stopped; the sweep's unfinished runs are interrupted or queued: resume them in the app.");
  };
  process.once('SIGINT', onSignal);
  try {
    const response = await service.handle({ method: 'sweeps.create', input: spec });
    if (!response.ok) throw new Error(response.error.message);
    const created = response.value as { sweep: { experimentId: number; name: string }; runs: Run[] };
    for (const run of created.runs) pending.add(run.id);
    if (json)
      line({
        type: 'sweep',
        experimentId: created.sweep.experimentId,
        name: created.sweep.name,
        runs: created.runs.map((r) => ({ id: r.id, name: r.name })),
      });
    else
      process.stdout.write(
        `Sweep "${created.sweep.name}" (experiment ${created.sweep.experimentId}): ${created.runs.length} runs queued in ${dataDir}.\n`,
      );
    await allEnded;
  } finally {
    stop();
    process.off('SIGINT', onSignal);
    service.close();
  }
  if (json) line({ type: 'done', failed: failed.length });
  return failed.length === 0 ? 0 : 1;
}

export function registerSweep(program: Command): void {
  program
    .command('sweep')
    .description(
      'expand a base config over a grid of values and seeds; queue the runs as one sweep (an experiment) and run them',
    )
    .requiredOption('--config <base.json>', 'the base config of every run (JSON)')
    .option(
      '--grid <path=v1,v2>',
      'a config path and its values, e.g. mi.lambda=1e-5,1e-3 (repeat for more axes: the runs are the cross product)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--seeds <list>', 'seeds, each run of the grid once per seed', '0')
    .addOption(new Option('--kind <kind>', 'what each run is').choices(JOB_KINDS).default('pretrain'))
    .option('--name <name>', 'the sweep\'s name (its experiment\'s; default "sweep <config> <time>")')
    .option('--dry-run', 'list the expanded runs and queue nothing')
    .option(
      '--queue-only',
      'store the runs as queued and return; the app or `mimir serve` on the same data folder runs them',
    )
    .option('--data-dir <dir>', 'where the experiment store and the runs live (default ~/.mimir, or $MIMIR_HOME)')
    .option('--json', 'machine-readable output: with --dry-run one JSON object, otherwise one JSON line per event')
    .addOption(backendOption())
    .action(
      commandAction(async (options: SweepOptions, json) => {
        const spec: SweepSpecInput = {
          name: options.name ?? defaultName(options.config),
          kind: options.kind,
          base: readConfigFile(options.config),
          grid: options.grid.map(parseGridArg),
          seeds: parseSeedsArg(options.seeds),
        };
        const expansion = expandSweep(spec);
        if (!expansion.ok) throw new Error(`the sweep is refused:\n  ${expansion.issues.join('\n  ')}`);
        if (options.dryRun) {
          if (json) {
            line({ type: 'sweep', dryRun: true, name: spec.name, kind: spec.kind, runs: expansion.runs });
          } else {
            process.stdout.write(
              `Sweep "${spec.name}": ${expansion.runs.length} ${spec.kind} runs (dry run, nothing queued)\n`,
            );
            for (const run of expansion.runs)
              process.stdout.write(`  ${String(run.index + 1).padStart(4)}  ${run.name}\n`);
          }
          return;
        }
        const dataDir = options.dataDir ?? defaultHome();
        if (options.queueOnly) {
          const [{ RunStore }, { createSweep }] = await Promise.all([
            import('@store/run-store'),
            import('@store/sweeps'),
          ]);
          mkdirSync(path.join(dataDir, 'runs'), { recursive: true });
          const store = RunStore.open(path.join(dataDir, 'mimir.db'));
          try {
            const { sweep, runs } = createSweep(store, spec, path.join(dataDir, 'runs'));
            if (json)
              line({
                type: 'sweep',
                experimentId: sweep.experimentId,
                name: sweep.name,
                queued: true,
                runs: runs.map((r) => ({ id: r.id, name: r.name })),
              });
            else
              process.stdout.write(
                `Sweep "${sweep.name}" (experiment ${sweep.experimentId}): ${runs.length} runs queued in ${dataDir}; the app or \`mimir serve --data-dir ${dataDir}\` runs them.\n`,
              );
          } finally {
            store.close();
          }
          return;
        }
        process.exitCode = await runSweep(spec, options, dataDir);
      }),
    );
}
