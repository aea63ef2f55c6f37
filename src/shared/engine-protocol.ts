import { z } from 'zod';
import { ForcedBackend, SystemReport } from './system';

/** Messages from a parent (Electron main, CLI, web server) to an engine process. */
export const ParentMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('probe'), forced: ForcedBackend.nullable() }),
]);
export type ParentMessage = z.infer<typeof ParentMessage>;

/** Messages from an engine process to its parent. */
export const EngineMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), report: SystemReport }),
  z.object({ type: z.literal('failed'), message: z.string() }),
]);
export type EngineMessage = z.infer<typeof EngineMessage>;
