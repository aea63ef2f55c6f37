import type { z } from 'zod';
import {
  ApiRequest,
  apiMethods,
  type ApiMethod,
  type ApiMethods,
  type ApiOutput,
  type ApiResponse,
} from '../shared/api';
import type { ForcedBackend, SystemReport } from '../shared/system';
import type { ProcessLauncher } from '../jobs/channel';
import { probeEngineProcess } from '../jobs/engine-host';

/**
 * The app API, transport-free: Electron's IPC handler (src/main) and web mode's HTTP server
 * (src/server) both hand every request to `handle`.
 */
export interface AppService {
  handle(request: unknown): Promise<ApiResponse>;
}

export interface AppServiceOptions {
  launch: ProcessLauncher;
  /** The backend engine processes must use (from --backend or MIMIR_BACKEND), or null for the best available. */
  forced: ForcedBackend | null;
}

type Handlers = { [M in ApiMethod]: (input: z.output<ApiMethods[M]['input']>) => Promise<ApiOutput<M>> };

export function createAppService({ launch, forced }: AppServiceOptions): AppService {
  let report: Promise<SystemReport> | null = null;

  const handlers: Handlers = {
    'system.report': () => {
      report ??= probeEngineProcess(launch, forced).catch((error: unknown) => {
        report = null; // let the next call try again rather than cache a failure
        throw error;
      });
      return report;
    },
  };

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
      const value = await handlers[method](input.data);
      return { ok: true, value: apiMethods[method].output.parse(value) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { ok: false, error: { code: 'internal', message } };
    }
  }

  return { handle };
}
