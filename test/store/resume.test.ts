import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/shared/run-events';
import { RunStore } from '../../src/store/run-store';

let store: RunStore;
beforeEach(() => {
  store = RunStore.open(':memory:');
});
afterEach(() => {
  store.close();
});

const started = (step: number, resumedFrom: string | null): RunEvent => ({
  type: 'started',
  runKind: 'pretrain',
  backend: 'wasm',
  outDir: '/runs/a',
  step,
  epoch: Math.floor(step / 10),
  totalSteps: 186,
  stepsPerEpoch: 10,
  resumedFrom,
});

/** A first attempt that reached step 37, with previews every 10 steps and (optionally) a checkpoint at 20. */
function firstAttempt(checkpointAt20: boolean): string {
  const run = store.createRun({ name: 'run', kind: 'pretrain', outDir: '/runs/a' });
  store.updateRunStatus(run.id, 'running');
  store.recordEvent(run.id, started(0, null));
  for (let step = 1; step <= 37; step += 1) {
    store.recordEvent(run.id, { type: 'metrics', step, epoch: step / 10, values: { loss: 100 + step, lr: step } });
    if (step % 10 === 0) {
      store.recordEvent(run.id, {
        type: 'preview',
        step,
        epoch: step / 10,
        dir: `/runs/a/previews/${step}`,
        files: { clean: 'clean.png' },
        count: 4,
        imageSize: 16,
        perturbationScale: 4,
      });
    }
    if (checkpointAt20 && step === 20) {
      store.recordEvent(run.id, { type: 'checkpoint', step, epoch: 2, path: '/runs/a/checkpoints/epoch-0002' });
    }
  }
  store.recordEvent(run.id, {
    type: 'progress',
    epoch: 4,
    epochs: 19,
    step: 37,
    totalSteps: 186,
    imagesPerSecond: 1,
    etaSeconds: 1,
  });
  store.updateRunStatus(run.id, 'cancelled');
  store.updateRunStatus(run.id, 'queued', { reason: 'resumed' });
  store.updateRunStatus(run.id, 'running');
  return run.id;
}

const stepsOf = (runId: string, key: string) => store.getMetricSeries([runId], [key])[0]?.steps;
const previewSteps = (runId: string) => store.listArtifacts(runId, 'preview').map((a) => a.step);

describe('a resumed run keeps only what it stored up to the step it resumes from', () => {
  it('restarting from step 0 (cancelled before any checkpoint) drops every point and preview of the first attempt', () => {
    const id = firstAttempt(false);
    store.recordEvent(id, started(0, null));
    expect(stepsOf(id, 'loss')).toEqual([]);
    expect(stepsOf(id, 'lr')).toEqual([]);
    expect(store.listMetricKeys(id)).toEqual([]);
    expect(previewSteps(id)).toEqual([]);
    expect(store.getRun(id)).toMatchObject({ status: 'running', step: 0, epoch: 0 });
    // The second attempt's points are its own.
    store.recordEvent(id, { type: 'metrics', step: 1, epoch: 0.1, values: { loss: 7 } });
    expect(store.getMetricSeries([id], ['loss'])[0]).toMatchObject({ steps: [1], values: [7] });
  });

  it('resuming from the checkpoint of step 20 keeps steps 1..20 and their previews and checkpoint', () => {
    const id = firstAttempt(true);
    store.recordEvent(id, started(20, '/runs/a/checkpoints/epoch-0002'));
    expect(stepsOf(id, 'loss')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(store.getMetricSeries([id], ['loss'])[0]?.values.at(-1)).toBe(120);
    expect(previewSteps(id)).toEqual([10, 20]);
    expect(store.listArtifacts(id, 'checkpoint').map((a) => a.path)).toEqual(['/runs/a/checkpoints/epoch-0002']);
    expect(store.getRun(id)).toMatchObject({ step: 20, lastCheckpoint: '/runs/a/checkpoints/epoch-0002' });
  });

  it('the restart and the deletion are one transaction: a batch that fails later leaves the first attempt whole', () => {
    const id = firstAttempt(false);
    expect(() => store.recordEvents(id, [started(0, null), { type: 'no-such-event' } as unknown as RunEvent])).toThrow(
      /Unknown run event/,
    );
    expect(stepsOf(id, 'loss')).toHaveLength(37);
    expect(previewSteps(id)).toEqual([10, 20, 30]);
  });
});
