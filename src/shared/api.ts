import { z } from 'zod';
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
import { SystemReport } from './system';

const RunId = z.object({ id: z.string().min(1) });

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
  /** Create a run from a config (validated against the kind's schema) and queue it. */
  'runs.create': {
    input: z.object({
      kind: JobKind,
      name: z.string().trim().min(1).max(200),
      config: z.record(z.string(), z.unknown()),
      experimentId: z.number().int().positive().optional(),
      parentRunId: z.string().nullable().default(null),
    }),
    output: Run,
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
  'runs.artifacts': { input: RunId.extend({ kind: ArtifactKind.optional() }), output: z.array(Artifact) },
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
