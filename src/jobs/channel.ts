import { fork } from 'node:child_process';

/** A parent's handle on an engine process, whatever started it (Electron utilityProcess or Node fork). */
export interface ProcessChannel {
  /** The process id, once started (undefined if it failed to start). */
  readonly pid: number | undefined;
  send(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Called once when the process ends; `code` is null when it was killed by a signal. */
  onExit(listener: (code: number | null) => void): void;
  /** Lines the process wrote to stderr, for error reports. */
  onStderr(listener: (text: string) => void): void;
  kill(): void;
}

export type ProcessLauncher = (entry: string, args: string[]) => ProcessChannel;

/** Start an engine process with child_process.fork: the CLI's and web mode's launcher. */
export const forkLauncher: ProcessLauncher = (entry, args) => {
  const child = fork(entry, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'advanced' });
  return {
    pid: child.pid,
    send: (message) => {
      if (child.connected) child.send(message as object);
    },
    onMessage: (listener) => child.on('message', listener),
    onExit: (listener) => child.once('exit', (code) => listener(code)),
    onStderr: (listener) => child.stderr?.on('data', (chunk: Buffer) => listener(chunk.toString())),
    kill: () => {
      child.kill();
    },
  };
};
