import path from 'node:path';

/** The renderer's security settings, in one place so a test can hold them to account. */
export function secureWebPreferences(mainDir: string): {
  preload: string;
  contextIsolation: true;
  sandbox: true;
  nodeIntegration: false;
  webSecurity: true;
} {
  return {
    preload: path.join(mainDir, '../preload/index.cjs'),
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    webSecurity: true,
  };
}
