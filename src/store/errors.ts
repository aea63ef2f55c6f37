/**
 * Why the store refused something. The message says what happened and what to do; the code lets the
 * app API map it (not-found, invalid input, unavailable) without parsing text.
 */
export type StoreErrorCode =
  | 'cannot-open'
  | 'not-a-database'
  | 'not-a-store'
  | 'corrupt'
  | 'locked'
  | 'in-use'
  | 'too-new'
  | 'migration-failed'
  | 'not-found'
  | 'invalid-transition'
  | 'conflict'
  | 'invalid-input';

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** The SQLite result code of a better-sqlite3 error (e.g. SQLITE_BUSY), or null for any other error. */
export function sqliteCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null || !('code' in error)) return null;
  const { code } = error as { code: unknown };
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : null;
}
