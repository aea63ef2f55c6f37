import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { ApiInput, ApiMethod, ApiOutput } from '../../src/shared/api';
import type { PushMessage } from '../../src/shared/push';
import type { Run } from '../../src/shared/store-types';
import { requireBuilt } from '../helpers/build';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * A run whose config names the PyTorch engine goes through the same job runner, events and store as a
 * tfjs run: stored once each, pushed live, previews recorded, backend 'torch'; its checkpoint then
 * fine-tunes on the tfjs engine through the same API.
 */

const MICRO = {
  mode: 'mimir',
  model: 'micro',
  dataset: { kind: 'builtin', size: 32, imageSize: 16 },
  batchSize: 8,
  checkpointEvery: 1,
  previewCount: 4,
  optimizer: { warmupEpochs: 1, baseLr: 2e-3 },
  engine: { name: 'torch', nproc: 2, device: 'cpu' },
};

let services: AppService[] = [];
afterEach(() => {
  for (const service of services) service.close();
  services = [];
});

async function call<M extends ApiMethod>(service: AppService, method: M, input: ApiInput<M>): Promise<ApiOutput<M>> {
  const response = await service.handle({ method, input });
  if (!response.ok) throw new Error(`${method}: ${response.error.message}`);
  return response.value as ApiOutput<M>;
}

async function until(service: AppService, id: string, done: (run: Run) => boolean, timeoutMs: number): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await call(service, 'runs.get', { id });
    if (done(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} is still ${run.status} (step ${run.step})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the job runner with the PyTorch engine', () => {
  const found = findPythonWithTorch();
  if (!found.python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }

  it('runs a MIMIR pre-training on 2 torch processes, storing and pushing its events once; tfjs fine-tunes its checkpoint', async () => {
    requireBuilt('main/engine-process.js');
    const service = createAppService({
      launch: forkLauncher,
      forced: null,
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-torch-')),
    });
    services.push(service);
    const pushes: PushMessage[] = [];
    service.onPush((message) => pushes.push(message));

    const created = await call(service, 'runs.create', {
      kind: 'pretrain',
      name: 'torch mimir',
      config: { ...MICRO, epochs: 2 },
    });
    const run = await until(service, created.id, (r) => r.status === 'done' || r.status === 'failed', 300_000);
    expect(run.status, run.error ?? '').toBe('done');
    expect(run.backend).toBe('torch');
    // The run header's compute line comes from the started event, stored with the run.
    expect(run.engine).toEqual({
      name: 'torch',
      version: found.python?.torch,
      device: 'cpu',
      devices: ['cpu'],
      precision: 'fp32',
      worldSize: 2,
    });
    expect(run.step).toBe(8);
    const [loss] = await call(service, 'runs.metrics', { ids: [run.id], keys: ['loss'] });
    // Once per step: node 0's rank 0 alone reports.
    expect(loss?.steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const pushed = pushes.filter(
      (p) => p.type === 'run-event' && p.event.type === 'metrics' && p.event.values.loss !== undefined,
    );
    expect(pushed).toHaveLength(8);
    const previews = await call(service, 'runs.artifacts', { id: run.id, kind: 'preview' });
    expect(previews.length).toBeGreaterThan(0);

    const tuned = await call(service, 'runs.create', {
      kind: 'finetune',
      name: 'tfjs pgd-at of a torch pre-training',
      config: {
        method: 'pgd-at',
        source: { kind: 'pretrained', checkpoint: run.lastCheckpoint ?? '' },
        dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        batchSize: 8,
        epochs: 1,
        attack: { steps: 2 },
        heldOut: { size: 0 },
      },
    });
    const finetuned = await until(service, tuned.id, (r) => r.status === 'done' || r.status === 'failed', 300_000);
    expect(finetuned.status, finetuned.error ?? '').toBe('done');
    expect(finetuned.backend).not.toBe('torch');
  }, 600_000);
});
