import { StoreError } from '../../src/store/errors';

/** The StoreError `run` throws; fails the test if it throws anything else or nothing. */
export function storeError(run: () => unknown): StoreError {
  try {
    run();
  } catch (error) {
    if (error instanceof StoreError) return error;
    throw new Error(`expected a StoreError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a StoreError, nothing was thrown');
}
