/**
 * Electron main process: one window, the app API over IPC, engine work in utility processes.
 * It never runs tensor work itself: a blocked main process freezes every window.
 */
import { app, BrowserWindow, ipcMain, session } from 'electron';
import path from 'node:path';
import { createAppService } from '../service/app-service';
import { readForcedBackend } from '../shared/system';
import { API_CHANNEL } from '../shared/ipc';
import { utilityLauncher } from './utility-launcher';
import { secureWebPreferences } from './web-preferences';

const forced = readForcedBackend(null, process.env.MIMIR_BACKEND);
const service = createAppService({ launch: utilityLauncher, forced });

function createWindow(): BrowserWindow {
  const window = new BrowserWindow({
    width: 1280,
    height: 820,
    title: 'MIMIR Workbench',
    show: false,
    webPreferences: secureWebPreferences(import.meta.dirname),
  });
  window.once('ready-to-show', () => window.show());
  // The app is one page; it neither opens windows nor navigates away.
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (event) => event.preventDefault());

  const devServer = process.env.ELECTRON_RENDERER_URL;
  if (devServer) void window.loadURL(devServer);
  else void window.loadFile(path.join(import.meta.dirname, '../renderer/index.html'));
  return window;
}

void app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  ipcMain.handle(API_CHANNEL, (_event, request: unknown) => service.handle(request));
  createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
