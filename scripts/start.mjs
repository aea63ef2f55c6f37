// `npm start`: build, then open the workbench in Electron. Where Electron cannot run (its binary could
// not be downloaded, or there is no display, as on a GPU box reached over SSH), say why and start
// web mode instead, which serves the same UI on 127.0.0.1. `npm start -- --web` asks for web mode.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import './check-node.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const electronDir = path.join(root, 'node_modules', 'electron');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function electronBinary() {
  const pathFile = path.join(electronDir, 'path.txt');
  if (!existsSync(pathFile)) return null;
  const binary = path.join(electronDir, 'dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(binary) ? binary : null;
}

/** Electron's binary, downloading it on first use as the electron package does; or why there is none. */
function ensureElectron() {
  const found = electronBinary();
  if (found) return { binary: found };
  if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD) {
    return { why: 'ELECTRON_SKIP_BINARY_DOWNLOAD is set, so Electron was not downloaded' };
  }
  console.log('Downloading Electron (first start only)...');
  const result = spawnSync(process.execPath, [path.join(electronDir, 'install.js')], { cwd: root, encoding: 'utf8' });
  const binary = electronBinary();
  if (binary) return { binary };
  const detail = (result.stderr || result.stdout || '').trim().split('\n')[0] ?? '';
  return { why: `Electron's binary could not be downloaded (${detail || `exit code ${result.status}`})` };
}

function startWebMode(reason) {
  if (reason)
    console.log(
      `\nNot opening a window: ${reason}.\nStarting web mode instead (the same workbench in your browser):\n`,
    );
  const server = spawn(process.execPath, [path.join(root, 'bin', 'mimir.mjs'), 'serve'], {
    cwd: root,
    stdio: 'inherit',
  });
  server.on('exit', (code) => process.exit(code ?? 0));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.kill(signal));
}

run(process.execPath, [path.join(root, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'build']);

if (process.argv.includes('--web')) {
  startWebMode(null);
} else if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
  startWebMode('no display (DISPLAY and WAYLAND_DISPLAY are unset)');
} else {
  const electron = ensureElectron();
  if (!electron.binary) {
    startWebMode(electron.why);
  } else {
    const sandbox = process.getuid?.() === 0 ? ['--no-sandbox'] : []; // Chromium refuses to run as root otherwise
    const app = spawn(electron.binary, [path.join(root, 'out', 'main', 'index.js'), ...sandbox], {
      cwd: root,
      stdio: 'inherit',
    });
    app.on('exit', (code) => process.exit(code ?? 0));
  }
}
