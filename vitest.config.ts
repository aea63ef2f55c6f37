import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { resolveAliases } from './eslint/layers.mjs';

export default defineConfig({
  // The path aliases (@shared, @engine, ...) of eslint/layers.mjs.
  resolve: { alias: resolveAliases(fileURLToPath(new URL('.', import.meta.url))) },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // Tests wait on conditions, so a long limit costs time only when a test fails; a clean-clone CI
    // at load 18 (two cores) took more than 60 s for a lint of src/ and a micro fine-tune.
    testTimeout: 180_000,
    hookTimeout: 240_000,
    // expect.poll waits on a condition; its default of 1 s is too short when CI shares the cores.
    expect: { poll: { timeout: 30_000 } },
    // Two cores: TensorFlow.js suites compete for them, so files run in at most two workers.
    maxWorkers: 2,
    globalSetup: ['./test/helpers/temp-root.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
