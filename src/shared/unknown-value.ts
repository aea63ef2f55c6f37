// Reading values whose type is not known: what was caught, what JSON.parse returned.

/** The message of a caught value: an Error's message, anything else as a string. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** A plain object (not null, not an array), as parsed JSON holds one. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
