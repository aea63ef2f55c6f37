import { z } from 'zod';
import { SystemReport } from './system';

/**
 * The app API: every method the renderer may call, with its input and output schema.
 * Served over IPC in Electron (src/main) and over HTTP in web mode (src/server), both backed by
 * src/service. Inputs are validated where they arrive, outputs where they are received.
 */
export const apiMethods = {
  'system.report': { input: z.object({}), output: SystemReport },
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

/** What the renderer sees: one typed call per method, whatever carries it. */
export interface AppApi {
  call<M extends ApiMethod>(method: M, input: ApiInput<M>): Promise<ApiOutput<M>>;
}

/** The raw transport the preload exposes on `window.mimir` (untyped on the wire, checked by the client). */
export interface ApiTransport {
  call(request: ApiRequest): Promise<unknown>;
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
