import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Timing runs, kept out of the regular suite (they take a minute on a busy 2-core machine):
 *   npx vitest run --config test/engine/model/perf/vitest.config.ts
 */
export default defineConfig({
  root: fileURLToPath(new URL('../../../../', import.meta.url)),
  test: {
    include: ['test/engine/model/perf/*.perf.ts'],
    environment: 'node',
    testTimeout: 900_000,
    maxWorkers: 1,
  },
});
