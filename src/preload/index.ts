/**
 * The only bridge between the sandboxed renderer and the main process: `window.mimir.call`,
 * one IPC channel. Requests and responses are checked against the shared schemas on both sides
 * (src/service on the main side, the renderer's API client on this side).
 */
import { contextBridge, ipcRenderer } from 'electron';
import type { ApiRequest, ApiTransport } from '../shared/api';
import { API_CHANNEL } from '../shared/ipc';

const transport: ApiTransport = {
  call: (request: ApiRequest) => ipcRenderer.invoke(API_CHANNEL, request),
};

contextBridge.exposeInMainWorld('mimir', transport);
