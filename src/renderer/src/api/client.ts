import { readApiResponse, type ApiTransport, type AppApi } from '@shared/api';
import { PushMessage } from '@shared/push';

/**
 * Web mode: requests over HTTP and pushes over a WebSocket; the server's cookie (set from the URL's
 * token) authenticates both. The socket reconnects after a drop (the server restarted, say).
 */
function httpTransport(): ApiTransport {
  const listeners = new Set<(message: unknown) => void>();
  let socket: WebSocket | null = null;
  const connect = (): void => {
    const url = new URL('/api/push', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    socket = new WebSocket(url);
    socket.addEventListener('message', (event) => {
      let message: unknown;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      for (const listener of listeners) listener(message);
    });
    socket.addEventListener('close', () => {
      socket = null;
      if (listeners.size > 0) setTimeout(connect, 2000);
    });
  };
  return {
    async call(request) {
      const response = await fetch('/api/call', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
      });
      if (!response.ok) throw new Error(`The workbench server answered ${response.status}: ${await response.text()}`);
      return response.json();
    },
    onPush(listener) {
      listeners.add(listener);
      if (!socket) connect();
      return () => listeners.delete(listener);
    },
  };
}

export function createApiClient(transport: ApiTransport): AppApi {
  return {
    async call(method, input) {
      return readApiResponse(method, await transport.call({ method, input }));
    },
    onPush(listener) {
      return transport.onPush((raw) => {
        const message = PushMessage.safeParse(raw);
        if (message.success) listener(message.data);
        else console.warn(`Ignored a malformed push: ${message.error.message}`);
      });
    },
  };
}

/** Electron's preload bridge when there is one, HTTP otherwise. */
export const api: AppApi = createApiClient(window.mimir ?? httpTransport());
export const transportName: 'electron' | 'web' = window.mimir ? 'electron' : 'web';
