import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import { collectEvents } from '../../../src/engine/train/run-lifecycle';
import { countStepReads, spyBackendReads } from '../../helpers/step-reads';
import { useSwiftShader } from './swiftshader';

/**
 * A micro MIMIR pre-training on webgpu (SwiftShader): no step reads the device (every read of the
 * backend counted, kernels included), the metrics are read in one transfer every 8 steps by default,
 * and the previews are written.
 */
describe('metrics read every few steps on webgpu (SwiftShader)', () => {
  beforeAll(async () => {
    useSwiftShader();
    expect((await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli')).chosen).toBe('webgpu');
  });

  it('a step never reads the device; the run reads its metrics every 8 steps (the default)', async () => {
    const { events, emit } = collectEvents();
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-cadence-webgpu-'));
    const run = () =>
      runPretraining(
        {
          mode: 'mimir',
          model: 'micro',
          dataset: { kind: 'builtin', size: 64, imageSize: 16 },
          batchSize: 4,
          epochs: 1,
          attack: { steps: 1 },
          mi: { estimator: 'hsic' },
          previewCount: 2,
        },
        { outDir, emit },
      );
    const { readsInStep, readsOutside, metricReads } = await countStepReads(run, spyBackendReads);
    expect(events.at(-1)?.type).toBe('done');
    const losses = events.flatMap((e) => (e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : []));
    expect(losses).toHaveLength(16);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(readsInStep).toEqual(new Array(16).fill(0));
    expect(metricReads).toBe(2);
    expect(readsOutside).toBeGreaterThan(0);
    // At the start and at the epoch's end.
    expect(readdirSync(path.join(outDir, 'previews')).sort()).toEqual(['step-0000000', 'step-0000016']);
  }, 300_000);
});
