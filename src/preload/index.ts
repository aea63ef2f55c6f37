/**
 * The only bridge between the sandboxed renderer and the main process: `window.mimir.call` (one IPC
 * channel for every API method) and `window.mimir.onPush` (run events and run updates). Requests and
 * responses are checked against the shared schemas on both sides (src/service on the main side, the
 * renderer's API client on this side).
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { ApiRequest, ApiTransport } from '@shared/api';
import { API_CHANNEL, PUSH_CHANNEL } from '@shared/ipc';

const transport: ApiTransport = {
  call: (request: ApiRequest) => ipcRenderer.invoke(API_CHANNEL, request),
  onPush: (listener) => {
    const forward = (_event: IpcRendererEvent, message: unknown): void => listener(message);
    ipcRenderer.on(PUSH_CHANNEL, forward);
    return () => ipcRenderer.off(PUSH_CHANNEL, forward);
  },
};

contextBridge.exposeInMainWorld('mimir', transport);
