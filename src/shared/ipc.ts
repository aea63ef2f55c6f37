/** IPC channels between the preload and the main process (kept import-free for the preload bundle). */
export const API_CHANNEL = 'mimir:api';
export const PUSH_CHANNEL = 'mimir:push';
