/**
 * The child side of ProcessChannel: Electron's utilityProcess exposes process.parentPort, a Node
 * fork exposes process.send. Engine-process code talks to this and never asks which it is.
 */
export interface ParentPort {
  post(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
}

interface ElectronParentPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (event: { data: unknown }) => void): void;
}

export function connectToParent(): ParentPort {
  const electronPort = (process as NodeJS.Process & { parentPort?: ElectronParentPort }).parentPort;
  if (electronPort) {
    return {
      post: (message) => electronPort.postMessage(message),
      onMessage: (listener) => electronPort.on('message', (event) => listener(event.data)),
    };
  }
  const send = process.send?.bind(process);
  if (!send) throw new Error('The engine process was started without a channel to its parent (no IPC, no parentPort).');
  return {
    post: (message) => {
      send(message as object);
    },
    onMessage: (listener) => process.on('message', listener),
  };
}
