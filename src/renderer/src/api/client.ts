import { readApiResponse, type ApiTransport, type AppApi } from '../../../shared/api';

/** Web mode: the same requests over HTTP; the server's cookie (set from the URL's token) authenticates them. */
const httpTransport: ApiTransport = {
  async call(request) {
    const response = await fetch('/api/call', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    if (!response.ok) throw new Error(`The workbench server answered ${response.status}: ${await response.text()}`);
    return response.json();
  },
};

export function createApiClient(transport: ApiTransport): AppApi {
  return {
    async call(method, input) {
      return readApiResponse(method, await transport.call({ method, input }));
    },
  };
}

/** Electron's preload bridge when there is one, HTTP otherwise. */
export const api: AppApi = createApiClient(window.mimir ?? httpTransport);
export const transportName: 'electron' | 'web' = window.mimir ? 'electron' : 'web';
