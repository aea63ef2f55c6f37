import { errorMessage } from '@shared/unknown-value';
/**
 * Electron main process: one window, the app API over IPC, engine work in utility processes.
 * It never runs tensor work itself: a blocked main process freezes every window.
 */
import path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, session } from 'electron';
import { createAppService, type AppService } from '@service/app-service';
import { API_CHANNEL, PUSH_CHANNEL } from '@shared/ipc';
import { readForcedBackend } from '@shared/system';
import { isAppSender, type AppPage } from './ipc-sender';
import { utilityLauncher } from './utility-launcher';
import { secureWebPreferences } from './web-preferences';

const forced = readForcedBackend(null, process.env.MIMIR_BACKEND);
const devServer = process.env.ELECTRON_RENDERER_URL;
const page: AppPage = devServer ? { devServer } : { file: path.join(import.meta.dirname, '../renderer/index.html') };

function createWindow(): BrowserWindow {
  const window = new BrowserWindow({
    width: 1360,
    height: 880,
    title: 'MIMIR Workbench',
    show: false,
    webPreferences: secureWebPreferences(import.meta.dirname),
  });
  window.once('ready-to-show', () => window.show());
  // The app is one page; it neither opens windows nor navigates away.
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (event) => event.preventDefault());

  if ('devServer' in page) void window.loadURL(page.devServer);
  else void window.loadFile(page.file);
  return window;
}

void app.whenReady().then(() => {
  const dataDir = process.env.MIMIR_HOME ?? path.join(app.getPath('userData'), 'workbench');
  let service: AppService;
  try {
    service = createAppService({ launch: utilityLauncher, forced, dataDir, owner: 'MIMIR Workbench (the app)' });
  } catch (error) {
    // e.g. the data folder is in use by another MIMIR: say so and stop, having changed nothing.
    dialog.showErrorBox('MIMIR Workbench cannot start', errorMessage(error));
    app.exit(1);
    return;
  }
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  ipcMain.handle(API_CHANNEL, (event, request: unknown) => {
    const frame = event.senderFrame;
    const sender = frame ? { url: frame.url, isMainFrame: frame.parent === null } : null;
    if (!isAppSender(sender, page)) {
      throw new Error(`Refused an app API call from ${sender?.url ?? 'a closed frame'}: not the app's own page.`);
    }
    return service.handle(request);
  });
  service.onPush((message) => {
    for (const window of BrowserWindow.getAllWindows()) window.webContents.send(PUSH_CHANNEL, message);
  });
  app.on('will-quit', () => service.close());
  createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
