import { z } from 'zod';
import { RunEvent } from './run-events';
import { Run } from './store-types';

/**
 * What the app pushes to the renderer without being asked: every run event as the store records it,
 * and a run's new row when its status changes. Electron sends these over IPC, web mode over a WebSocket.
 */
export const PushMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('run-event'), runId: z.string(), event: RunEvent }),
  z.object({ type: z.literal('run-updated'), run: Run }),
]);
export type PushMessage = z.infer<typeof PushMessage>;
