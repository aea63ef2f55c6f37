import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './build';

/**
 * The Electron binary, when one was downloaded (`npm install` does, unless ELECTRON_SKIP_BINARY_DOWNLOAD
 * is set, as on CI here). Reading path.txt avoids `require('electron')`, which would try to download.
 */
export function electronBinary(): string | null {
  const dir = path.join(ROOT, 'node_modules', 'electron');
  const pathFile = path.join(dir, 'path.txt');
  if (!existsSync(pathFile)) return null;
  const binary = path.join(dir, 'dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(binary) ? binary : null;
}

/** A display for Electron: the session's own, or an Xvfb started for the test. */
export async function ensureDisplay(): Promise<{ display: string; stop: () => void } | null> {
  if (process.env.DISPLAY) return { display: process.env.DISPLAY, stop: () => undefined };
  const xvfb = ['/usr/bin/Xvfb', '/usr/local/bin/Xvfb'].find((file) => existsSync(file));
  if (!xvfb) return null;
  const display = `:${90 + Math.floor(Math.random() * 100)}`;
  const server: ChildProcess = spawn(xvfb, [display, '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {
    stdio: 'ignore',
  });
  await new Promise((resolve) => setTimeout(resolve, 800));
  return { display, stop: () => server.kill() };
}
