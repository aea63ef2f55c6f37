import { mkdirSync } from 'node:fs';
import { realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { ApiRequest, apiMethods, type ApiMethod, type ApiMethods, type ApiOutput, type ApiResponse } from '@shared/api';
import { parseRunConfig } from '@shared/run-configs';
import { RUN_PRESETS } from '@shared/presets';
import type { PushMessage } from '@shared/push';
import type { ForcedBackend, SystemReport } from '@shared/system';
import type { ProcessLauncher } from '@jobs/channel';
import { FileReadError, readRegularFile } from '@engine/io/read-file';
import { probeEngineProcess } from '@jobs/engine-host';
import { torchEngineReport } from '@torch/python';
import { JobRunner } from '@jobs/job-runner';
import { lockDataFolder } from '@store/data-folder-lock';
import { StoreError } from '@store/errors';
import { newRunId, RunStore } from '@store/run-store';
import { createSweep, listSweeps, requireSweep, sweepRuns } from '@store/sweeps';
import { CatalogError, createCheckpointCatalog } from './checkpoint-catalog';
import { createDatasetBrowser } from './dataset-browser';
import { createCifar10Download } from './dataset-download';
import { paperTableFromStore, runFigures } from './paper-tables';
import { errorMessage } from '@shared/unknown-value';

/**
 * The app API, transport-free: Electron's IPC handler (src/main) and web mode's HTTP server
 * (src/server) hand every request to `handle` and forward every push to the renderer.
 */
export interface AppService {
  handle(request: unknown): Promise<ApiResponse>;
  onPush(listener: (message: PushMessage) => void): () => void;
  /**
   * Recover the runs a previous MIMIR left (interrupted unless their engine still lives) and start the
   * queued ones. Once; createAppService does it unless told `startJobs: false`.
   */
  startJobs(): void;
  /**
   * Whether `file` is one this service exported (weights or config JSON), which web mode may send to the
   * browser as a download; no other file of the machine is handed out.
   */
  exported(file: string): boolean;
  /** Stop the jobs (their runs become interrupted, resumable), close the store, let go of the data folder. */
  close(): void;
}

export interface AppServiceOptions {
  launch: ProcessLauncher;
  /** The backend engine processes must use (from --backend or MIMIR_BACKEND), or null for the best available. */
  forced: ForcedBackend | null;
  /** Holds mimir.db (the experiment store) and runs/<run id>/ (each run's checkpoints and previews). */
  dataDir: string;
  /** What this process is, for the message another MIMIR gets when it finds the data folder taken. Default: its command line. */
  owner?: string;
  /**
   * false: touch no run until startJobs() (web mode binds its port first, so that a server that cannot
   * serve changes nothing). Default true.
   */
  startJobs?: boolean;
}

/** An error the renderer should show as is: it says what was wrong with the request. */
class RequestError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid-input' | 'not-found',
  ) {
    super(message);
  }
}

const MIME: Record<string, string> = { '.png': 'image/png', '.json': 'application/json', '.txt': 'text/plain' };
const MAX_FILE_BYTES = 16 << 20;

function storeErrorCode(error: StoreError): 'not-found' | 'invalid-input' | 'internal' {
  if (error.code === 'not-found') return 'not-found';
  if (error.code === 'invalid-transition' || error.code === 'invalid-input' || error.code === 'conflict')
    return 'invalid-input';
  return 'internal';
}

type Handlers = { [M in ApiMethod]: (input: z.output<ApiMethods[M]['input']>) => Promise<ApiOutput<M>> | ApiOutput<M> };

export function createAppService(options: AppServiceOptions): AppService {
  const { launch, forced, dataDir } = options;
  // Before the store is read: a second MIMIR on this folder must change nothing (see data-folder-lock).
  const lock = lockDataFolder(
    dataDir,
    options.owner ?? (process.argv.slice(1).join(' ').slice(0, 200) || process.title),
  );
  let store: RunStore;
  try {
    store = RunStore.open(path.join(dataDir, 'mimir.db'));
  } catch (error) {
    lock.release();
    throw error;
  }
  // Absolute, so that a run's folder matches the checkpoint paths other runs' configs name (lineage).
  const runsDir = path.resolve(dataDir, 'runs');
  mkdirSync(runsDir, { recursive: true });
  const runner = new JobRunner({ store, launch, forced });
  let started = false;
  const startJobs = (): void => {
    if (started) return;
    started = true;
    runner.recover();
  };
  if (options.startJobs !== false) startJobs();
  let report: Promise<SystemReport> | null = null;
  const datasets = createDatasetBrowser();
  const checkpoints = createCheckpointCatalog({ store, dataDir });

  const getRun = (id: string) => {
    const run = store.getRun(id);
    if (!run) throw new RequestError(`No run with id ${id}.`, 'not-found');
    return run;
  };

  /** Files exports.write wrote in this session (web mode's downloads). */
  const exportedFiles = new Set<string>();
  const cifar10Download = createCifar10Download();
  const handlers: Handlers = {
    'system.report': () => {
      report ??= probeEngineProcess(launch, forced)
        .then(async (found) => ({ ...found, torchEngine: await torchEngineReport() }))
        .catch((error: unknown) => {
          report = null; // let the next call try again rather than cache a failure
          throw error;
        });
      return report;
    },
    'presets.list': () => RUN_PRESETS,
    'experiments.list': () => store.listExperiments(),
    'runs.list': (filter) => store.listRuns(filter),
    'runs.get': ({ id }) => getRun(id),
    'runs.create': async ({ kind, name, config, experimentId }) => {
      const parsed = parseRunConfig(kind, config);
      if (!parsed.ok) throw new RequestError(`Invalid ${kind} config: ${parsed.issues.join('; ')}`, 'invalid-input');
      // Refused now rather than failing once queued: a missing folder, one class, a patch size that does not fit.
      const { checkRunDataset } = await import('@engine/data/run-checks');
      await checkRunDataset(kind, parsed.config).catch((error: unknown) => {
        throw new RequestError(errorMessage(error), 'invalid-input');
      });
      const id = newRunId();
      const run = store.createRun({
        id,
        name,
        kind,
        config: parsed.config,
        outDir: path.join(runsDir, id),
        ...(experimentId !== undefined ? { experimentId } : {}),
      });
      runner.enqueue(run.id);
      return store.getRun(run.id) ?? run;
    },
    'sweeps.create': (spec) => {
      const created = createSweep(store, spec, runsDir);
      for (const run of created.runs) runner.enqueue(run.id);
      return { sweep: created.sweep, runs: created.runs.map((run) => store.getRun(run.id) ?? run) };
    },
    'sweeps.list': () => listSweeps(store),
    'sweeps.get': ({ experimentId }) => ({
      sweep: requireSweep(store, experimentId),
      runs: sweepRuns(store, experimentId),
    }),
    'runs.cancel': ({ id }) => runner.cancel(getRun(id).id),
    'runs.resume': ({ id }) => runner.resume(getRun(id).id),
    'runs.delete': async ({ id, deleteFiles }) => {
      const run = getRun(id);
      if (runner.isActive(run.id)) throw new RequestError('Cancel the run before deleting it.', 'invalid-input');
      const { outDir } = store.deleteRun(run.id);
      if (deleteFiles && outDir && path.resolve(outDir).startsWith(path.resolve(runsDir) + path.sep)) {
        await rm(outDir, { recursive: true, force: true });
      }
      return { deleted: run.id };
    },
    'runs.rename': ({ id, name }) => store.renameRun(getRun(id).id, name),
    'runs.setNote': ({ id, text }) => store.setNote(getRun(id).id, text),
    'runs.addTag': ({ id, tag }) => store.addTag(getRun(id).id, tag),
    'runs.removeTag': ({ id, tag }) => store.removeTag(getRun(id).id, tag),
    'runs.tags': () => store.listTags(),
    'runs.metricKeys': ({ ids }) => [...new Set(ids.flatMap((id) => store.listMetricKeys(getRun(id).id)))].sort(),
    'runs.metrics': ({ ids, keys, query }) =>
      store.getMetricSeries(
        ids.map((id) => getRun(id).id),
        keys,
        query,
      ),
    'runs.logs': ({ id, afterId, limit }) =>
      store.listLogs(getRun(id).id, {
        ...(afterId !== undefined ? { afterId } : {}),
        ...(limit !== undefined ? { limit } : {}),
      }),
    'evaluations.list': ({ runId, modelRunId }) => {
      if (runId !== undefined) return store.listEvaluations(getRun(runId).id);
      if (modelRunId !== undefined) return store.listEvaluationsOfModel(getRun(modelRunId).id);
      throw new RequestError('Give runId or modelRunId.', 'invalid-input');
    },
    'tables.build': (request) => paperTableFromStore(store, request),
    'runs.figures': ({ ids }) => runFigures(store, ids),
    'runs.artifacts': ({ id, kind }) => store.listArtifacts(getRun(id).id, kind),
    'datasets.describe': ({ source }) => datasetRequest(() => datasets.describe(source)),
    'datasets.page': ({ source, offset, limit, label }) =>
      datasetRequest(() => datasets.page(source, offset, limit, label)),
    'datasets.download': ({ start, root }) => (start ? cifar10Download.start(root) : cifar10Download.status()),
    'datasets.image': ({ source, index }) => datasetRequest(() => datasets.image(source, index)),
    'checkpoints.list': ({ kind, runId }) => {
      if (runId !== undefined) getRun(runId);
      return checkpoints.list({ ...(kind ? { kind } : {}), ...(runId !== undefined ? { runId } : {}) });
    },
    'exports.suggest': ({ checkpoint, naming }) => checkpoints.suggest(checkpoint, naming),
    'exports.write': async (input) => {
      const outcome = await checkpoints.write(input);
      exportedFiles.add(path.resolve(outcome.file)).add(path.resolve(outcome.configFile));
      return outcome;
    },
    'exports.import': ({ file, config }) => checkpoints.importFile({ file, ...(config ? { config } : {}) }),
    'files.read': async ({ runId, path: requested }) => {
      const run = getRun(runId);
      if (!run.outDir) throw new RequestError(`Run ${runId} has no output folder.`, 'not-found');
      const folder = path.resolve(run.outDir);
      const file = path.resolve(folder, requested);
      if (!file.startsWith(folder + path.sep))
        throw new RequestError(`${requested} is outside run ${runId}'s folder.`, 'invalid-input');
      // Where the path really leads: a symbolic link inside the folder must not reach out of it.
      let root: string;
      let real: string;
      try {
        [root, real] = await Promise.all([realpath(folder), realpath(file)]);
      } catch {
        throw new RequestError(`Run ${runId} has no file ${requested}.`, 'not-found');
      }
      if (!real.startsWith(root + path.sep)) {
        throw new RequestError(
          `${requested} is a link to ${real}, outside run ${runId}'s folder; only files inside it are read.`,
          'invalid-input',
        );
      }
      let bytes: Buffer;
      try {
        bytes = await readRegularFile(real, MAX_FILE_BYTES);
      } catch (error) {
        if (error instanceof FileReadError) throw new RequestError(`Run ${runId}: ${error.message}`, error.code);
        throw error;
      }
      return {
        mime: MIME[path.extname(file)] ?? 'application/octet-stream',
        base64: bytes.toString('base64'),
        bytes: bytes.length,
      };
    },
  };

  /** A dataset that cannot be opened or read is the request's problem (a path, an index), said as such. */
  async function datasetRequest<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof RangeError) throw new RequestError(error.message, 'invalid-input');
      if (error instanceof Error && error.name === 'DatasetError') {
        const code = (error as Error & { code?: string }).code;
        throw new RequestError(error.message, code === 'missing' ? 'not-found' : 'invalid-input');
      }
      throw error;
    }
  }

  async function handle(raw: unknown): Promise<ApiResponse> {
    const request = ApiRequest.safeParse(raw);
    if (!request.success) {
      return { ok: false, error: { code: 'invalid-input', message: `Not an API request: ${request.error.message}` } };
    }
    const { method } = request.data;
    const input = apiMethods[method].input.safeParse(request.data.input);
    if (!input.success) {
      return {
        ok: false,
        error: { code: 'invalid-input', message: `Invalid input to ${method}: ${input.error.message}` },
      };
    }
    try {
      const handler = handlers[method] as (input: unknown) => Promise<unknown> | unknown;
      const value = await handler(input.data);
      return { ok: true, value: apiMethods[method].output.parse(value) };
    } catch (error) {
      const message = errorMessage(error);
      const code =
        error instanceof RequestError || error instanceof CatalogError
          ? error.code
          : error instanceof StoreError
            ? storeErrorCode(error)
            : 'internal';
      return { ok: false, error: { code, message } };
    }
  }

  return {
    handle,
    onPush: (listener) => runner.onPush(listener),
    startJobs,
    exported: (file) => exportedFiles.has(path.resolve(file)),
    close: () => {
      runner.shutdown();
      store.close();
      lock.release();
    },
  };
}
