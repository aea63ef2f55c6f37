import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store';
import { createSweep, getSweep, listSweeps, sweepRuns } from '../../src/store/sweeps';
import { storeError } from './expect-store-error';

let store: RunStore;

beforeEach(() => {
  store = RunStore.open(':memory:', { now: () => 5_000 });
});
afterEach(() => {
  store.close();
});

const SPEC = {
  name: 'lambda x steps',
  base: { mode: 'mimir', model: 'micro', epochs: 1, batchSize: 8 },
  grid: [
    { path: 'mi.lambda', values: [1e-5, 1e-3] },
    { path: 'attack.steps', values: [1, 10] },
  ],
  seeds: [0, 1],
};

describe('sweeps in the store', () => {
  it('stores the experiment, the spec and one queued run per config, each in its own folder', () => {
    const { sweep, runs } = createSweep(store, SPEC, '/data/runs', () => 7_000);
    expect(sweep).toMatchObject({
      name: 'lambda x steps',
      createdAt: 7_000,
      spec: { kind: 'pretrain', seeds: [0, 1] },
    });
    expect(runs).toHaveLength(8);
    const stored = store.listRuns({ experimentId: sweep.experimentId, sort: 'name', direction: 'asc' });
    expect(stored.map((r) => r.id).sort()).toEqual(runs.map((r) => r.id).sort());
    for (const run of stored) {
      expect(run.status).toBe('queued');
      expect(run.outDir).toBe(`/data/runs/${run.id}`);
    }
    expect(new Set(stored.map((r) => JSON.stringify([r.config.mi, r.config.attack, r.config.seed]))).size).toBe(8);
    expect(store.getExperiment(sweep.experimentId)).toMatchObject({ runCount: 8 });
    expect(getSweep(store, sweep.experimentId)).toEqual(sweep);
    // Same clock for every run: the expansion order still holds.
    expect(sweepRuns(store, sweep.experimentId).map((r) => r.id)).toEqual(runs.map((r) => r.id));
    expect(listSweeps(store)).toEqual([sweep]);
    expect(getSweep(store, store.defaultExperiment().id)).toBeNull();
  });

  it('refuses a bad grid or a taken name and stores nothing', () => {
    const bad = storeError(() =>
      createSweep(store, { ...SPEC, grid: [{ path: 'attack.stepz', values: [1] }] }, '/data/runs'),
    );
    expect(bad.code).toBe('invalid-input');
    expect(bad.message).toContain('--grid attack.stepz: unknown path');
    createSweep(store, SPEC, '/data/runs');
    const taken = storeError(() => createSweep(store, SPEC, '/data/runs'));
    expect(taken.message).toContain('An experiment named "lambda x steps" exists already');
    expect(store.listRuns({})).toHaveLength(8);
    expect(listSweeps(store)).toHaveLength(1);
  });
});
