import { z } from 'zod';
import { CheckpointKind } from './checkpoint';
import { DatasetDescription, DatasetSource } from './dataset-config';
import { JobKind } from './engine-protocol';
import { RunPreset } from './presets';
import type { PushMessage } from './push';
import {
  Artifact,
  ArtifactKind,
  Evaluation,
  Experiment,
  LogEntry,
  MetricSeries,
  MetricSeriesQuery,
  Run,
  RunFilter,
  TagCount,
} from './store-types';
import { PaperTable } from './paper-table';
import { Sweep, SweepSpec } from './sweep';
import { SystemReport } from './system';

const RunId = z.object({ id: z.string().min(1) });

/** A dataset source opened for browsing: its size, classes and (built-in set) what each class is. */
export const DatasetInfo = z.object({
  description: DatasetDescription,
  length: z.number().int().nonnegative(),
  numClasses: z.number().int().positive(),
  classNames: z.array(z.string()),
  imageSize: z.number().int().positive(),
  /** Images per class, by label. */
  classCounts: z.array(z.number().int().nonnegative()),
  /** The built-in dataset's classes explained, in label order; null for other sources. */
  classInfo: z.array(z.object({ name: z.string(), description: z.string() })).nullable(),
});
export type DatasetInfo = z.infer<typeof DatasetInfo>;

/** One page of a dataset (or of one class of it) as a PNG sprite sheet. */
export const DatasetPage = z.object({
  /** Images matching the request's class filter (the whole split without one). */
  total: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  /** Split indices of the page's images, in sheet order (left to right, top to bottom). */
  indices: z.array(z.number().int().nonnegative()),
  labels: z.array(z.number().int().nonnegative()),
  /** Images per row of the sheet. */
  columns: z.number().int().positive(),
  /** Side of one image in the sheet: the image size, or smaller when large images were box-downsampled. */
  tileSize: z.number().int().positive(),
  imageSize: z.number().int().positive(),
  /** Base64 PNG; null for an empty page. */
  png: z.string().nullable(),
});
export type DatasetPage = z.infer<typeof DatasetPage>;

export const DatasetImage = z.object({
  index: z.number().int().nonnegative(),
  label: z.number().int().nonnegative(),
  className: z.string(),
  imageSize: z.number().int().positive(),
  /** Base64 PNG at full size. */
  png: z.string(),
});
export type DatasetImage = z.infer<typeof DatasetImage>;

/** A checkpoint a picker offers: one a done pre-training or fine-tuning run saved, or an imported one. */
/** The dataset browser's CIFAR-10 download, as polled. */
export const DownloadStatus = z.object({
  state: z.enum(['idle', 'running', 'done', 'failed']),
  receivedBytes: z.number().nonnegative(),
  /** Null until the server says (Content-Length). */
  totalBytes: z.number().nonnegative().nullable(),
  /** The folder the archive goes into (a CIFAR-10 source's root). */
  dir: z.string().nullable(),
  url: z.string().nullable(),
  error: z.string().nullable(),
});
export type DownloadStatus = z.infer<typeof DownloadStatus>;

export const CheckpointEntry = z.object({
  path: z.string(),
  kind: CheckpointKind,
  origin: z.enum(['run', 'import']),
  /** The run that saved it (null for an import). */
  runId: z.string().nullable(),
  /** The run's name, or the imported file's name. */
  name: z.string(),
  /** Pre-training mode (mae, adv-mae, mimir) or fine-tuning method (pgd-at, ...), when known. */
  detail: z.string(),
  step: z.number().int().nullable(),
  epoch: z.number().int().nullable(),
  /** The run's final checkpoint. */
  final: z.boolean(),
  createdAt: z.number(),
  /** The encoder kind its modelConfig names ('vit' where none), null where unreadable: which engine runs it. */
  encoder: z.string().nullable(),
});
export type CheckpointEntry = z.infer<typeof CheckpointEntry>;

export const ExportNaming = z.enum(['timm', 'native']);
export type ExportNaming = z.infer<typeof ExportNaming>;

export const ExportOutcome = z.object({
  file: z.string(),
  configFile: z.string(),
  bytes: z.number().int().nonnegative(),
  kind: CheckpointKind,
  naming: ExportNaming,
  tensors: z.number().int().nonnegative(),
  withDecoder: z.boolean(),
  numClasses: z.number().int().nonnegative(),
  /** The class the file loads into, `module.Class` under timm.models (mimir_convstem_vit: docs/export's module). */
  architecture: z.string(),
  /** That class's keyword arguments, as written in the config JSON. */
  modelArgs: z.record(z.string(), z.unknown()),
  /** How to load the file in PyTorch (Python source). */
  pytorch: z.string(),
});
export type ExportOutcome = z.infer<typeof ExportOutcome>;

export const ImportOutcome = z.object({
  /** The checkpoint directory written (usable as a fine-tuning source or an evaluation's model). */
  checkpoint: z.string(),
  kind: CheckpointKind,
  naming: ExportNaming,
  tensors: z.number().int().nonnegative(),
  numClasses: z.number().int().nonnegative(),
  classNames: z.array(z.string()),
  method: z.string().nullable(),
  modelConfig: z.record(z.string(), z.unknown()),
});
export type ImportOutcome = z.infer<typeof ImportOutcome>;

const AbsoluteFile = z
  .string()
  .trim()
  .min(1, 'give a file path')
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('~'), 'give an absolute path');

/**
 * The app API: every method the renderer may call, with its input and output schema.
 * Served over IPC in Electron (src/main) and over HTTP in web mode (src/server), both backed by
 * src/service. Inputs are validated where they arrive, outputs where they are received.
 */
export const apiMethods = {
  'system.report': { input: z.object({}), output: SystemReport },
  'presets.list': { input: z.object({}), output: z.array(RunPreset) },
  'experiments.list': { input: z.object({}), output: z.array(Experiment) },
  'runs.list': { input: RunFilter, output: z.array(Run) },
  'runs.get': { input: RunId, output: Run },
  /**
   * Create a run from a config (validated against the kind's schema) and queue it. Its parent run is
   * derived from the checkpoint the config names; a `parentRunId` in the input is ignored.
   */
  'runs.create': {
    input: z.object({
      kind: JobKind,
      name: z.string().trim().min(1).max(200),
      config: z.record(z.string(), z.unknown()),
      experimentId: z.number().int().positive().optional(),
    }),
    output: Run,
  },
  /** Expand a sweep spec into runs of a new experiment named after it, and queue them all. */
  'sweeps.create': { input: SweepSpec, output: z.object({ sweep: Sweep, runs: z.array(Run) }) },
  'sweeps.list': { input: z.object({}), output: z.array(Sweep) },
  'sweeps.get': {
    input: z.object({ experimentId: z.number().int().positive() }),
    output: z.object({ sweep: Sweep, runs: z.array(Run) }),
  },
  'runs.cancel': { input: RunId, output: Run },
  /** Queue an interrupted, failed or cancelled run again; it continues from its last checkpoint. */
  'runs.resume': { input: RunId, output: Run },
  'runs.delete': {
    input: RunId.extend({ deleteFiles: z.boolean().default(false) }),
    output: z.object({ deleted: z.string() }),
  },
  'runs.rename': { input: RunId.extend({ name: z.string().trim().min(1).max(200) }), output: Run },
  'runs.setNote': { input: RunId.extend({ text: z.string().max(100_000) }), output: Run },
  'runs.addTag': { input: RunId.extend({ tag: z.string().trim().min(1).max(64) }), output: Run },
  'runs.removeTag': { input: RunId.extend({ tag: z.string() }), output: Run },
  'runs.tags': { input: z.object({}), output: z.array(TagCount) },
  'runs.metricKeys': { input: z.object({ ids: z.array(z.string()).min(1) }), output: z.array(z.string()) },
  'runs.metrics': {
    input: z.object({
      ids: z.array(z.string()).min(1),
      keys: z.array(z.string()).min(1),
      query: MetricSeriesQuery.prefault({}),
    }),
    output: z.array(MetricSeries),
  },
  'runs.logs': {
    input: RunId.extend({
      afterId: z.number().int().optional(),
      limit: z.number().int().positive().max(5000).optional(),
    }),
    output: z.array(LogEntry),
  },
  /** Evaluations stored by an evaluation run (`runId`) or of a model run's checkpoints (`modelRunId`). */
  'evaluations.list': {
    input: z.object({ runId: z.string().optional(), modelRunId: z.string().optional() }),
    output: z.array(Evaluation),
  },
  /** Natural and worst-case robust accuracy of each run's latest evaluation (null where it has none). */
  'runs.figures': {
    input: z.object({ ids: z.array(z.string()).max(10_000) }),
    output: z.record(
      z.string(),
      z.object({ natural: z.number().nullable(), robust: z.number().nullable() }).nullable(),
    ),
  },
  /** A paper table of runs (or seed groups) and columns, with its CSV, Markdown and LaTeX text. */
  'tables.build': {
    input: z.object({
      runIds: z.array(z.string().min(1)).min(1, 'pick at least one run'),
      columns: z.array(z.string().min(1)).min(1, 'pick at least one column'),
      group: z.boolean().default(false),
      digits: z.number().int().min(0).max(4).default(2),
    }),
    output: z.object({ table: PaperTable, csv: z.string(), markdown: z.string(), latex: z.string() }),
  },
  'runs.artifacts': { input: RunId.extend({ kind: ArtifactKind.optional() }), output: z.array(Artifact) },
  /** Open a dataset source (kept open for the pages that follow) and describe it. */
  'datasets.describe': { input: z.object({ source: DatasetSource }), output: DatasetInfo },
  /**
   * CIFAR-10's download: `start` begins it (into `root`, default $MIMIR_DATA/cifar10 or
   * ~/.mimir/datasets/cifar10) unless one runs; either way the answer is its status, to poll.
   */
  'datasets.download': {
    input: z.object({
      dataset: z.literal('cifar10'),
      start: z.boolean().default(false),
      root: z.string().trim().min(1, 'root must be a folder').optional(),
    }),
    output: DownloadStatus,
  },
  /** A page of a dataset, optionally of one class only (`label`), as a PNG sprite sheet. */
  'datasets.page': {
    input: z.object({
      source: DatasetSource,
      offset: z.number().int().nonnegative().default(0),
      limit: z.number().int().positive().max(400).default(100),
      label: z.number().int().nonnegative().nullable().default(null),
    }),
    output: DatasetPage,
  },
  /** One image at full size. */
  'datasets.image': {
    input: z.object({ source: DatasetSource, index: z.number().int().nonnegative() }),
    output: DatasetImage,
  },
  /** Checkpoints of done pre-training / fine-tuning runs (and imported ones), newest first, for pickers. */
  'checkpoints.list': {
    input: z.object({ kind: CheckpointKind.optional(), runId: z.string().optional() }),
    output: z.array(CheckpointEntry),
  },
  /** Where an export of `checkpoint` goes unless the user says otherwise (the data folder's exports/). */
  'exports.suggest': {
    input: z.object({ checkpoint: z.string().min(1), naming: ExportNaming.default('timm') }),
    output: z.object({ file: z.string(), exists: z.boolean() }),
  },
  /** Write a checkpoint as safetensors (timm's names and layouts, or native) plus its config JSON. */
  'exports.write': {
    input: z.object({
      checkpoint: z.string().min(1),
      naming: ExportNaming.default('timm'),
      /** Pre-training checkpoints: also write MAE's decoder. */
      decoder: z.boolean().default(false),
      file: AbsoluteFile.refine((p) => p.endsWith('.safetensors'), 'the file name must end in .safetensors'),
      overwrite: z.boolean().default(false),
    }),
    output: ExportOutcome,
  },
  /** Read an exported (or timm-written) safetensors file and its config JSON into a new checkpoint. */
  'exports.import': {
    input: z.object({ file: AbsoluteFile, config: AbsoluteFile.optional() }),
    output: ImportOutcome,
  },
  /** A file a run wrote (a preview PNG, ...), read from inside the run's folder only. */
  'files.read': {
    input: z.object({ runId: z.string(), path: z.string() }),
    output: z.object({ mime: z.string(), base64: z.string(), bytes: z.number().int() }),
  },
} as const;

export type ApiMethods = typeof apiMethods;
export type ApiMethod = keyof ApiMethods;
export type ApiInput<M extends ApiMethod> = z.input<ApiMethods[M]['input']>;
export type ApiOutput<M extends ApiMethod> = z.output<ApiMethods[M]['output']>;

export const API_METHOD_NAMES = Object.keys(apiMethods) as [ApiMethod, ...ApiMethod[]];

export const ApiRequest = z.object({
  method: z.enum(API_METHOD_NAMES),
  input: z.unknown(),
});
export type ApiRequest = z.infer<typeof ApiRequest>;

export const ApiError = z.object({
  /** What went wrong and, where there is one, what to do about it. */
  message: z.string(),
  code: z.enum(['invalid-input', 'not-found', 'unavailable', 'internal']),
});
export type ApiError = z.infer<typeof ApiError>;

export const ApiResponse = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), value: z.unknown() }),
  z.object({ ok: z.literal(false), error: ApiError }),
]);
export type ApiResponse = z.infer<typeof ApiResponse>;

/** What the renderer sees: one typed call per method, whatever carries it, and the app's pushes. */
export interface AppApi {
  call<M extends ApiMethod>(method: M, input: ApiInput<M>): Promise<ApiOutput<M>>;
  /** Listen to pushed messages (validated PushMessage); returns the function that stops listening. */
  onPush(listener: (message: PushMessage) => void): () => void;
}

/** The raw transport the preload exposes on `window.mimir` (untyped on the wire, checked by the client). */
export interface ApiTransport {
  call(request: ApiRequest): Promise<unknown>;
  onPush(listener: (message: unknown) => void): () => void;
}

export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly code: ApiError['code'],
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

/** Parse a transport's response for `method`, throwing ApiCallError on a failure or a malformed value. */
export function readApiResponse<M extends ApiMethod>(method: M, raw: unknown): ApiOutput<M> {
  const response = ApiResponse.safeParse(raw);
  if (!response.success) {
    throw new ApiCallError(`Malformed response to ${method}: ${response.error.message}`, 'internal');
  }
  if (!response.data.ok) throw new ApiCallError(response.data.error.message, response.data.error.code);
  const value = apiMethods[method].output.safeParse(response.data.value);
  if (!value.success) {
    throw new ApiCallError(`Response to ${method} does not match its schema: ${value.error.message}`, 'internal');
  }
  return value.data as ApiOutput<M>;
}

/** Web mode's download of an exported file: GET DOWNLOAD_PATH?file=<path> (only files the workbench exported). */
export const DOWNLOAD_PATH = '/api/download';
