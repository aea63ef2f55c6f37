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

const MICRO = {
  mode: 'mimir',
  model: 'micro',
  dataset: { kind: 'builtin', size: 128, imageSize: 16 },
  batchSize: 32,
  checkpointEvery: 1,
  optimizer: { warmupEpochs: 1, baseLr: 2e-3 },
};

let services: AppService[] = [];
afterEach(() => {
  for (const service of services) service.close();
  services = [];
});

function start(dataDir: string): { service: AppService; pushes: PushMessage[] } {
  requireBuilt('main/engine-process.js');
  const service = createAppService({ launch: forkLauncher, forced: null, dataDir });
  services.push(service);
  const pushes: PushMessage[] = [];
  service.onPush((message) => pushes.push(message));
  return { service, pushes };
}

async function call<M extends ApiMethod>(service: AppService, method: M, input: ApiInput<M>): Promise<ApiOutput<M>> {
  const response = await service.handle({ method, input });
  if (!response.ok) throw new Error(`${method}: ${response.error.message}`);
  return response.value as ApiOutput<M>;
}

async function until(service: AppService, id: string, done: (run: Run) => boolean, timeoutMs = 60_000): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await call(service, 'runs.get', { id });
    if (done(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} is still ${run.status} (step ${run.step})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the job runner behind the app API', () => {
  it('runs a pre-training run in an engine process, storing and pushing every event', async () => {
    const { service, pushes } = start(mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-')));
    const created = await call(service, 'runs.create', {
      kind: 'pretrain',
      name: 'micro mimir',
      config: { ...MICRO, epochs: 2 },
    });
    expect(created.status).toMatch(/queued|running/);
    const run = await until(service, created.id, (r) => r.status === 'done' || r.status === 'failed');
    expect(run.status, run.error ?? '').toBe('done');
    expect(run.step).toBe(8);
    expect(run.lastCheckpoint).toMatch(/epoch-0002$/);
    expect(run.backend).not.toBeNull();

    const [loss] = await call(service, 'runs.metrics', { ids: [run.id], keys: ['loss'] });
    expect(loss?.steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const pushedLosses = pushes.flatMap((p) =>
      p.type === 'run-event' && p.event.type === 'metrics' && p.event.values.loss !== undefined
        ? [p.event.values.loss]
        : [],
    );
    expect(loss?.values).toEqual(pushedLosses);
    expect(pushes.some((p) => p.type === 'run-updated' && p.run.status === 'done')).toBe(true);
    const previews = await call(service, 'runs.artifacts', { id: run.id, kind: 'preview' });
    expect(previews.length).toBeGreaterThan(0);
  });

  it('refuses an invalid config with the field and the reason', async () => {
    const { service } = start(mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-')));
    const response = await service.handle({
      method: 'runs.create',
      input: { kind: 'pretrain', name: 'bad', config: { ...MICRO, batchSize: 1 } },
    });
    expect(response).toMatchObject({
      ok: false,
      error: { code: 'invalid-input', message: expect.stringContaining('batchSize') },
    });
  });

  it('cancels a running run, keeping what it stored', async () => {
    const { service } = start(mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-')));
    const created = await call(service, 'runs.create', {
      kind: 'pretrain',
      name: 'to cancel',
      config: { ...MICRO, epochs: 50 },
    });
    await until(service, created.id, (r) => (r.step ?? 0) >= 2);
    await call(service, 'runs.cancel', { id: created.id });
    const run = await until(service, created.id, (r) => r.status !== 'running');
    expect(run.status).toBe('cancelled');
    const [loss] = await call(service, 'runs.metrics', { ids: [run.id], keys: ['loss'] });
    expect(loss?.steps.length).toBeGreaterThanOrEqual(2);
  });

  it('a run resumed after a cancel with no checkpoint starts over: the first attempt’s points go as it restarts', async () => {
    const { service } = start(mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-')));
    const created = await call(service, 'runs.create', {
      kind: 'pretrain',
      name: 'cancel, then resume',
      config: { ...MICRO, epochs: 50, checkpointEvery: 50 },
    });
    await until(service, created.id, (r) => (r.step ?? 0) >= 5);
    await call(service, 'runs.cancel', { id: created.id });
    const cancelled = await until(service, created.id, (r) => r.status !== 'running');
    expect(cancelled).toMatchObject({ status: 'cancelled', lastCheckpoint: null });
    const [first] = await call(service, 'runs.metrics', { ids: [created.id], keys: ['loss'] });
    expect(first?.steps.length).toBeGreaterThanOrEqual(5);

    // What the store holds the moment the restart is recorded (the push follows the write, in the same tick).
    const restart: { snapshot: Promise<[ApiOutput<'runs.metrics'>, ApiOutput<'runs.artifacts'>, Run]> | null } = {
      snapshot: null,
    };
    service.onPush((message) => {
      if (message.type === 'run-event' && message.runId === created.id && message.event.type === 'started') {
        restart.snapshot ??= Promise.all([
          call(service, 'runs.metrics', { ids: [created.id], keys: ['loss'] }),
          call(service, 'runs.artifacts', { id: created.id, kind: 'preview' }),
          call(service, 'runs.get', { id: created.id }),
        ]);
      }
    });
    await call(service, 'runs.resume', { id: created.id });
    await until(service, created.id, () => restart.snapshot !== null);
    if (restart.snapshot === null) throw new Error('no started event was pushed');
    const [[loss], previews, run] = await restart.snapshot;
    expect(loss?.steps).toEqual([]);
    expect(previews).toEqual([]);
    expect(run).toMatchObject({ status: 'running', step: 0 });

    await call(service, 'runs.cancel', { id: created.id });
    await until(service, created.id, (r) => r.status === 'cancelled');
    const logs = await call(service, 'runs.logs', { id: created.id });
    expect(
      logs.some((entry) => /metric points an earlier attempt stored after step 0 were dropped/.test(entry.message)),
    ).toBe(true);
  });

  it('survives a killed engine process and a restarted app: nothing stored is lost, and the run resumes', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-jobs-'));
    const first = start(dataDir);
    const created = await call(first.service, 'runs.create', {
      kind: 'pretrain',
      name: 'to kill',
      config: { ...MICRO, epochs: 4 },
    });
    const running = await until(first.service, created.id, (r) => r.lastCheckpoint !== null && (r.step ?? 0) >= 5);
    if (!running.pid) throw new Error('no pid recorded');
    process.kill(running.pid, 'SIGKILL');
    const interrupted = await until(first.service, created.id, (r) => r.status !== 'running');
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.error).toMatch(/stopped unexpectedly/);
    const [before] = await call(first.service, 'runs.metrics', { ids: [created.id], keys: ['loss'] });
    first.service.close();

    // A new app on the same data: the run and its metrics are there, and it resumes from its checkpoint.
    const second = start(dataDir);
    const [after] = await call(second.service, 'runs.metrics', { ids: [created.id], keys: ['loss'] });
    expect(after?.steps).toEqual(before?.steps);
    expect(after?.values).toEqual(before?.values);
    await call(second.service, 'runs.resume', { id: created.id });
    const done = await until(second.service, created.id, (r) => r.status === 'done' || r.status === 'failed');
    expect(done.status, done.error ?? '').toBe('done');
    expect(done.step).toBe(16);
    const [final] = await call(second.service, 'runs.metrics', { ids: [created.id], keys: ['loss'] });
    expect(final?.steps).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    const logs = await call(second.service, 'runs.logs', { id: created.id });
    expect(logs.some((entry) => /Resum/.test(entry.message))).toBe(true);
  });
});
