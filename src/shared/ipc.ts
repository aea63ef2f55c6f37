/** The IPC channel the preload and the main process use for API calls (kept import-free for the preload bundle). */
export const API_CHANNEL = 'mimir:api';
