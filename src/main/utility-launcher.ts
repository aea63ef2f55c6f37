import { utilityProcess } from 'electron';
import type { ProcessLauncher } from '@jobs/channel';

/** Start an engine process as an Electron utilityProcess (a Node process Electron manages). */
export const utilityLauncher: ProcessLauncher = (entry, args) => {
  const child = utilityProcess.fork(entry, args, { stdio: ['ignore', 'inherit', 'pipe'], serviceName: 'MIMIR engine' });
  let spawned = false;
  const pending: unknown[] = [];
  child.once('spawn', () => {
    spawned = true;
    for (const message of pending.splice(0)) child.postMessage(message);
  });
  return {
    get pid() {
      return child.pid;
    },
    send: (message) => (spawned ? child.postMessage(message) : pending.push(message)),
    onMessage: (listener) => child.on('message', listener),
    onExit: (listener) => child.once('exit', (code) => listener(code)),
    onStderr: (listener) => child.stderr?.on('data', (chunk: Buffer) => listener(chunk.toString())),
    kill: () => {
      child.kill();
    },
  };
};
