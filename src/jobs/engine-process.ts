/**
 * Entry point of an engine process (Electron utilityProcess, or a Node fork from the CLI and web
 * mode). It loads TensorFlow.js, so the parent never blocks on tensor work.
 */
import { selectBackend } from '../engine/backend';
import { ParentMessage, type EngineMessage } from '../shared/engine-protocol';
import { connectToParent } from './parent-port';

const parent = connectToParent();
const post = (message: EngineMessage): void => parent.post(message);

parent.onMessage((raw) => {
  const parsed = ParentMessage.safeParse(raw);
  if (!parsed.success) {
    post({ type: 'failed', message: `Engine process got a malformed message: ${parsed.error.message}` });
    return;
  }
  const message = parsed.data;
  switch (message.type) {
    case 'probe': {
      selectBackend(message.forced, 'engine-process')
        .then((report) => post({ type: 'ready', report }))
        .catch((error: unknown) => {
          post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
        });
      break;
    }
  }
});
