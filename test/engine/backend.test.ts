import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, selectBackend } from '../../src/engine/backend';
import { BACKEND_NAMES, readForcedBackend } from '../../src/shared/system';

const requireModule = createRequire(import.meta.url);
const installed = (name: string): boolean => {
  try {
    requireModule.resolve(name);
    return true;
  } catch {
    return false;
  }
};

describe('backend selection', () => {
  it('lists every candidate in order of preference and picks the first available one', async () => {
    const report = await selectBackend(null, 'cli');
    expect(report.candidates.map((c) => c.module)).toEqual([
      '@tensorflow/tfjs-node-gpu',
      '@tensorflow/tfjs-node',
      '@tensorflow/tfjs-backend-webgpu',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-cpu',
    ]);
    const first = report.candidates.find((c) => c.available);
    expect(report.chosen).toBe(first?.backend);
    expect(report.chosenModule).toBe(first?.module);
    for (const candidate of report.candidates) expect(candidate.reason.length).toBeGreaterThan(5);
    expect(report.forcedBy).toBeNull();
  });

  it('says why an uninstalled tensorflow backend was passed over', async () => {
    const report = await selectBackend(null, 'cli');
    for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      const candidate = report.candidates.find((c) => c.module === name);
      if (!installed(name)) {
        expect(candidate?.available).toBe(false);
        expect(candidate?.reason).toMatch(/^not installed/);
      }
    }
  });

  it('activates a forced backend and records who forced it', async () => {
    const report = await selectBackend({ backend: 'cpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('cpu');
    expect(report.forcedBy).toBe('env');
    const tf = await import('@tensorflow/tfjs-core');
    expect(tf.getBackend()).toBe('cpu');
  });

  const hasTensorflow = installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node');
  it.skipIf(hasTensorflow)('refuses a forced backend that is unavailable instead of falling back', async () => {
    await expect(selectBackend({ backend: 'tensorflow', forcedBy: 'flag' }, 'cli')).rejects.toThrow(
      BackendUnavailableError,
    );
    await expect(selectBackend({ backend: 'tensorflow', forcedBy: 'flag' }, 'cli')).rejects.toThrow(
      /forced by --backend but is unavailable: @tensorflow\/tfjs-node-gpu: not installed/,
    );
  });

  it('reads --backend before MIMIR_BACKEND and rejects unknown names', () => {
    expect(readForcedBackend('cpu', 'wasm')).toEqual({ backend: 'cpu', forcedBy: 'flag' });
    expect(readForcedBackend(undefined, 'wasm')).toEqual({ backend: 'wasm', forcedBy: 'env' });
    expect(readForcedBackend(null, '')).toBeNull();
    expect(() => readForcedBackend(null, 'gpu')).toThrow(
      `Unknown backend "gpu" in MIMIR_BACKEND; choose one of: ${BACKEND_NAMES.join(', ')}.`,
    );
  });
});
