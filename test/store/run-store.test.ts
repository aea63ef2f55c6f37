import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/shared/run-events';
import { Run, type RunStatus } from '../../src/shared/store-types';
import { RUN_TRANSITIONS } from '../../src/store/run-status';
import { RunStore } from '../../src/store/run-store';
import { storeError } from './expect-store-error';

let store: RunStore;
let clock: number;

beforeEach(() => {
  clock = 1_000_000;
  store = RunStore.open(':memory:', { now: () => clock });
});
afterEach(() => {
  store.close();
});

const started = (step = 0, resumedFrom: string | null = null): RunEvent => ({
  type: 'started',
  runKind: 'pretrain',
  backend: 'wasm',
  outDir: '/runs/a',
  step,
  epoch: 0,
  totalSteps: 1000,
  stepsPerEpoch: 100,
  resumedFrom,
});

function newRun(name = 'run', extra: Partial<Parameters<RunStore['createRun']>[0]> = {}): Run {
  return store.createRun({ name, kind: 'pretrain', ...extra });
}

/** A fine-tuning config whose source is `checkpoint`. */
function fromCheckpoint(checkpoint: string): Record<string, unknown> {
  return { method: 'pgd-at', source: { kind: 'pretrained', checkpoint } };
}

function runIn(status: RunStatus): Run {
  const run = newRun(`in ${status}`);
  const paths: Record<RunStatus, RunStatus[]> = {
    queued: [],
    running: ['running'],
    done: ['running', 'done'],
    failed: ['running', 'failed'],
    cancelled: ['running', 'cancelled'],
    interrupted: ['running', 'interrupted'],
  };
  for (const to of paths[status]) store.updateRunStatus(run.id, to, to === 'failed' ? { error: 'boom' } : {});
  return store.getRun(run.id) ?? run;
}

describe('experiments', () => {
  it('creates, lists with run counts, refuses a duplicate name', () => {
    const a = store.createExperiment({ name: 'ablation', description: 'MI estimators' });
    expect(a).toMatchObject({ name: 'ablation', description: 'MI estimators', createdAt: clock, runCount: 0 });
    newRun('x', { experimentId: a.id });
    newRun('y'); // goes to the Default experiment
    const listed = store.listExperiments();
    expect(listed.map((e) => [e.name, e.runCount])).toEqual([
      ['ablation', 1],
      ['Default', 1],
    ]);
    const error = storeError(() => store.createExperiment({ name: 'ablation' }));
    expect(error.code).toBe('conflict');
    expect(error.message).toContain('"ablation" exists already');
  });
});

describe('runs', () => {
  it('creates a queued run with its config, parent and a short id', () => {
    const pretrain = newRun('mimir', { config: { mi: { estimator: 'hsic', lambda: 0.00003 } }, outDir: '/runs/m' });
    const finetune = store.createRun({ name: 'pgd-at', kind: 'finetune', config: fromCheckpoint('/runs/m/final') });
    expect(pretrain.id).toMatch(/^[0-9a-z]{12}$/);
    expect(Run.parse(finetune)).toEqual(finetune);
    expect(finetune).toMatchObject({
      status: 'queued',
      parentRunId: pretrain.id,
      createdAt: clock,
      tags: [],
      note: null,
    });
    expect(store.getRun(pretrain.id)?.config).toEqual({ mi: { estimator: 'hsic', lambda: 0.00003 } });
    expect(store.getRun('nope')).toBeNull();
    // A checkpoint no run owns (imported, or elsewhere on disk): no parent.
    expect(store.createRun({ name: 'e', kind: 'evaluate', config: { checkpoint: '/elsewhere/c' } }).parentRunId).toBe(
      null,
    );
    expect(storeError(() => store.createRun({ name: '', kind: 'pretrain' })).code).toBe('invalid-input');
    expect(storeError(() => newRun('dup', { id: pretrain.id })).code).toBe('conflict');
  });

  it('resolves a unique id prefix', () => {
    const a = newRun('a', { id: 'abc123' });
    newRun('b', { id: 'abd456' });
    expect(store.resolveRunId('abc')).toBe(a.id);
    expect(store.resolveRunId('abc123')).toBe(a.id);
    expect(storeError(() => store.resolveRunId('ab')).code).toBe('conflict');
    expect(storeError(() => store.resolveRunId('zz')).code).toBe('not-found');
  });

  it('deletes a run with everything recorded about it and returns its folder; refuses a running one', () => {
    const parent = newRun('parent', { outDir: '/runs/p' });
    const child = store.createRun({ name: 'child', kind: 'finetune', config: fromCheckpoint('/runs/p/c1') });
    store.updateRunStatus(parent.id, 'running');
    store.recordEvent(parent.id, { type: 'metrics', step: 1, epoch: 0, values: { loss: 1 } });
    store.recordEvent(parent.id, { type: 'checkpoint', step: 1, epoch: 0, path: '/runs/p/c1' });
    store.addTag(parent.id, 'keep');
    store.setNote(parent.id, 'note');
    store.addEvaluation(parent.id, { modelCheckpoint: '/runs/p/c1', protocol: {}, results: {} });
    expect(storeError(() => store.deleteRun(parent.id)).message).toContain('cancel it before deleting');

    store.updateRunStatus(parent.id, 'cancelled');
    expect(store.deleteRun(parent.id)).toEqual({ outDir: '/runs/p' });
    expect(store.getRun(parent.id)).toBeNull();
    for (const table of ['metrics', 'artifacts', 'tags', 'notes', 'evaluations', 'logs']) {
      expect(store.db.prepare(`SELECT count(*) FROM ${table} WHERE run_id = ?`).pluck().get(parent.id)).toBe(0);
    }
    expect(store.getRun(child.id)?.parentRunId).toBeNull(); // the fine-tuning run stays
  });
});

describe('status transitions', () => {
  const statuses: RunStatus[] = ['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted'];
  const legal = new Set([
    'queued>running',
    'queued>cancelled',
    'queued>failed',
    'running>done',
    'running>failed',
    'running>cancelled',
    'running>interrupted',
    'interrupted>queued',
    'failed>queued',
    'cancelled>queued',
  ]);

  it('the table allows exactly the documented changes', () => {
    const table = statuses.flatMap((from) => RUN_TRANSITIONS[from].map((to) => `${from}>${to}`));
    expect(new Set(table)).toEqual(legal);
  });

  for (const from of statuses) {
    for (const to of statuses) {
      const ok = legal.has(`${from}>${to}`);
      it(`${from} -> ${to} is ${ok ? 'allowed' : 'refused'}`, () => {
        const run = runIn(from);
        expect(run.status).toBe(from);
        if (ok) {
          const after = store.updateRunStatus(run.id, to, { pid: 4242, error: 'why' });
          expect(after.status).toBe(to);
        } else {
          const error = storeError(() => store.updateRunStatus(run.id, to));
          expect(error.code).toBe('invalid-transition');
          expect(error.message).toContain(`is ${from} and cannot become ${to}`);
          expect(store.getRun(run.id)?.status).toBe(from);
        }
      });
    }
  }

  it('keeps times, pid and error consistent through a resume cycle', () => {
    const run = newRun();
    clock = 2000;
    let r = store.updateRunStatus(run.id, 'running', { pid: 77 });
    expect(r).toMatchObject({ startedAt: 2000, endedAt: null, pid: 77 });
    clock = 3000;
    r = store.updateRunStatus(run.id, 'failed', { error: 'out of memory' });
    expect(r).toMatchObject({ endedAt: 3000, pid: null, error: 'out of memory' });
    r = store.updateRunStatus(run.id, 'queued');
    expect(r).toMatchObject({ status: 'queued', endedAt: null, error: null });
    clock = 4000;
    r = store.updateRunStatus(run.id, 'running', { pid: 78 });
    expect(r).toMatchObject({ startedAt: 2000, pid: 78 }); // first start kept
    const log = store.listLogs(run.id).map((entry) => entry.message);
    expect(log).toEqual([
      'status queued -> running',
      'status running -> failed: out of memory',
      'status failed -> queued',
      'status queued -> running',
    ]);
  });

  it('refuses a change for a run that does not exist', () => {
    expect(storeError(() => store.updateRunStatus('ghost', 'running')).code).toBe('not-found');
  });
});

describe('recordEvent', () => {
  it('started: queued -> running, backend, folder, steps, epochs', () => {
    const run = newRun();
    clock = 5000;
    store.recordEvent(run.id, started());
    expect(store.getRun(run.id)).toMatchObject({
      status: 'running',
      backend: 'wasm',
      outDir: '/runs/a',
      step: 0,
      totalSteps: 1000,
      epoch: 0,
      epochs: 10,
      startedAt: 5000,
      lastEventAt: 5000,
    });
    expect(store.listLogs(run.id).at(-1)?.message).toBe('pretrain started at step 0 on the wasm backend');
    // The job runner may have marked it running already (with the pid): started is then no change.
    const other = newRun('b');
    store.updateRunStatus(other.id, 'running', { pid: 9 });
    store.recordEvent(other.id, started(300, '/runs/a/ckpt-300'));
    expect(store.getRun(other.id)).toMatchObject({ status: 'running', pid: 9, step: 300 });
    expect(store.listLogs(other.id).at(-1)?.message).toBe(
      'pretrain resumed from /runs/a/ckpt-300 at step 300 on the wasm backend',
    );
  });

  it('metrics: one row per value; a re-logged step replaces its value; non-finite kept as null', () => {
    const run = runIn('running');
    clock = 10;
    store.recordEvent(run.id, { type: 'metrics', step: 1, epoch: 0, values: { loss: 2.5, mi: 0.1, lr: 1e-4 } });
    clock = 20;
    store.recordEvent(run.id, { type: 'metrics', step: 2, epoch: 0, values: { loss: Number.NaN, mi: Infinity } });
    clock = 30;
    store.recordEvent(run.id, { type: 'metrics', step: 1, epoch: 0, values: { loss: 2.0 } }); // a resumed run
    const rows = store.db
      .prepare('SELECT key, step, value, wall_time FROM metrics WHERE run_id = ? ORDER BY key, step')
      .all(run.id);
    expect(rows).toEqual([
      { key: 'loss', step: 1, value: 2.0, wall_time: 30 },
      { key: 'loss', step: 2, value: null, wall_time: 20 },
      { key: 'lr', step: 1, value: 1e-4, wall_time: 10 },
      { key: 'mi', step: 1, value: 0.1, wall_time: 10 },
      { key: 'mi', step: 2, value: null, wall_time: 20 },
    ]);
    expect(store.listMetricKeys(run.id)).toEqual(['loss', 'lr', 'mi']);
  });

  it('progress: step, epoch, speed and ETA', () => {
    const run = runIn('running');
    store.recordEvent(run.id, {
      type: 'progress',
      epoch: 3,
      epochs: 10,
      step: 250,
      totalSteps: 1000,
      imagesPerSecond: 812.5,
      etaSeconds: 93,
    });
    expect(store.getRun(run.id)).toMatchObject({
      step: 250,
      totalSteps: 1000,
      epoch: 3,
      epochs: 10,
      imagesPerSecond: 812.5,
      etaSeconds: 93,
    });
  });

  it('preview: one artifact per snapshot, with its files', () => {
    const run = runIn('running');
    store.recordEvent(run.id, {
      type: 'preview',
      step: 100,
      epoch: 1,
      dir: '/runs/a/previews/000100',
      files: { clean: 'clean.png', reconstruction: 'reconstruction.png' },
      count: 8,
      imageSize: 32,
      perturbationScale: 10,
    });
    const [preview, ...rest] = store.listArtifacts(run.id, 'preview');
    expect(rest).toEqual([]);
    expect(preview).toMatchObject({
      kind: 'preview',
      path: '/runs/a/previews/000100',
      step: 100,
      metadata: {
        epoch: 1,
        files: { clean: 'clean.png', reconstruction: 'reconstruction.png' },
        count: 8,
        imageSize: 32,
        perturbationScale: 10,
      },
    });
  });

  it("checkpoint: an artifact and the run's last checkpoint; done: final checkpoint once, summary, status", () => {
    const run = runIn('running');
    store.recordEvent(run.id, { type: 'checkpoint', step: 500, epoch: 5, path: '/runs/a/ckpt-500' });
    expect(store.getRun(run.id)?.lastCheckpoint).toBe('/runs/a/ckpt-500');
    store.recordEvent(run.id, { type: 'checkpoint', step: 1000, epoch: 10, path: '/runs/a/ckpt-1000' });
    clock = 9000;
    store.recordEvent(run.id, {
      type: 'done',
      step: 1000,
      epoch: 10,
      output: { kind: 'checkpoint', path: '/runs/a/ckpt-1000' },
      seconds: 123.4,
      summary: { loss: 0.12, mi: 0.03 },
    });
    const after = store.getRun(run.id);
    expect(after).toMatchObject({
      status: 'done',
      endedAt: 9000,
      step: 1000,
      lastCheckpoint: '/runs/a/ckpt-1000',
      output: { kind: 'checkpoint', path: '/runs/a/ckpt-1000' },
      summary: { loss: 0.12, mi: 0.03 },
      etaSeconds: null,
    });
    expect(store.listArtifacts(run.id, 'checkpoint').map((a) => [a.step, a.path, a.metadata])).toEqual([
      [500, '/runs/a/ckpt-500', { epoch: 5 }],
      [1000, '/runs/a/ckpt-1000', { epoch: 10, final: true }],
    ]);
    expect(store.listLogs(run.id).at(-1)?.message).toBe('done at step 1000 in 123.4 s');
    const direct = runIn('running'); // done without an earlier checkpoint event
    store.recordEvent(direct.id, {
      type: 'done',
      step: 7,
      epoch: 1,
      output: { kind: 'checkpoint', path: '/c7' },
      seconds: 0,
      summary: {},
    });
    expect(store.listArtifacts(direct.id).map((a) => [a.kind, a.path, a.step, a.metadata])).toEqual([
      ['checkpoint', '/c7', 7, { epoch: 1, final: true }],
    ]);
  });

  it('log: a row with level and message', () => {
    const run = runIn('running');
    clock = 77;
    store.recordEvent(run.id, { type: 'log', level: 'warn', message: 'loss spiked' });
    const entry = store.listLogs(run.id, { minLevel: 'warn' });
    expect(entry).toEqual([{ id: expect.any(Number), runId: run.id, time: 77, level: 'warn', message: 'loss spiked' }]);
  });

  it('failed: status, error, step and the last good checkpoint kept', () => {
    const run = runIn('running');
    store.recordEvent(run.id, { type: 'checkpoint', step: 400, epoch: 4, path: '/runs/a/ckpt-400' });
    store.recordEvent(run.id, { type: 'failed', message: 'NaN loss at step 431', step: 431, lastCheckpoint: null });
    expect(store.getRun(run.id)).toMatchObject({
      status: 'failed',
      error: 'NaN loss at step 431',
      step: 431,
      lastCheckpoint: '/runs/a/ckpt-400',
    });
    expect(store.listLogs(run.id, { minLevel: 'error' }).map((e) => e.message)).toEqual([
      'status running -> failed: NaN loss at step 431',
    ]);
    // A queued run whose process could not start fails too.
    const queued = newRun('q');
    store.recordEvent(queued.id, { type: 'failed', message: 'engine did not start', step: null, lastCheckpoint: null });
    expect(store.getRun(queued.id)?.status).toBe('failed');
  });

  it('failed: keeps the cause, config or run (run when the engine does not say), cleared by a resume', () => {
    const config = runIn('running');
    store.recordEvent(config.id, {
      type: 'failed',
      message: 'The train set has 16 images, fewer than one batch of 32.',
      step: 0,
      lastCheckpoint: null,
      cause: 'config',
    });
    expect(store.getRun(config.id)).toMatchObject({ status: 'failed', errorCause: 'config' });
    const untold = runIn('running');
    store.recordEvent(untold.id, { type: 'failed', message: 'out of memory', step: 3, lastCheckpoint: null });
    expect(store.getRun(untold.id)?.errorCause).toBe('run');
    store.updateRunStatus(untold.id, 'queued');
    expect(store.getRun(untold.id)).toMatchObject({ status: 'queued', error: null, errorCause: null });
    expect(runIn('running').errorCause).toBeNull();
  });

  it('an event that breaks a rule changes nothing at all', () => {
    const run = runIn('done');
    const before = store.getRun(run.id);
    const logs = store.listLogs(run.id).length;
    const error = storeError(() =>
      store.recordEvents(run.id, [
        { type: 'metrics', step: 5, epoch: 0, values: { loss: 1 } },
        { type: 'log', level: 'info', message: 'late' },
        { type: 'failed', message: 'too late', step: 5, lastCheckpoint: null },
      ]),
    );
    expect(error.code).toBe('invalid-transition');
    expect(store.getRun(run.id)).toEqual(before);
    expect(store.listLogs(run.id)).toHaveLength(logs);
    expect(store.listMetricKeys(run.id)).toEqual([]);
  });

  it('an event for an unknown run is refused clearly', () => {
    const error = storeError(() => store.recordEvent('ghost', { type: 'log', level: 'info', message: 'x' }));
    expect(error.code).toBe('not-found');
    expect(error.message).toContain('There is no run ghost');
  });
});

describe('listRuns', () => {
  function seed(): Record<string, Run> {
    const exp = store.createExperiment({ name: 'estimators' });
    const runs: Record<string, Run> = {};
    clock = 100;
    runs.hsic = newRun('MIMIR hsic', {
      experimentId: exp.id,
      config: { mi: { estimator: 'hsic' } },
      outDir: '/runs/h',
    });
    clock = 200;
    runs.renyi = newRun('MIMIR renyi', { experimentId: exp.id, config: { mi: { estimator: 'renyi' } } });
    clock = 300;
    runs.mae = newRun('plain MAE', { config: { mi: null } });
    clock = 400;
    runs.ft = store.createRun({ name: 'PGD-AT of hsic', kind: 'finetune', config: fromCheckpoint('/runs/h') });
    store.updateRunStatus(runs.hsic.id, 'running');
    store.updateRunStatus(runs.renyi.id, 'running');
    store.recordEvent(runs.hsic.id, {
      type: 'done',
      step: 10,
      epoch: 1,
      output: { kind: 'checkpoint', path: 'c' },
      seconds: 1,
      summary: { loss: 0.3 },
    });
    store.recordEvent(runs.renyi.id, {
      type: 'done',
      step: 10,
      epoch: 1,
      output: { kind: 'checkpoint', path: 'c' },
      seconds: 1,
      summary: { loss: 0.2 },
    });
    store.addTag(runs.hsic.id, 'paper');
    store.addTag(runs.mae.id, 'baseline');
    store.addTag(runs.mae.id, 'paper');
    store.setNote(runs.renyi.id, 'Diverged twice before alpha = 1.01');
    return runs;
  }
  const names = (runs: Run[]): string[] => runs.map((r) => r.name);

  it('filters by status, kind, experiment, parent and tag', () => {
    const runs = seed();
    expect(names(store.listRuns({ status: 'done' }))).toEqual(['MIMIR renyi', 'MIMIR hsic']);
    expect(names(store.listRuns({ status: ['queued'], kind: 'pretrain' }))).toEqual(['plain MAE']);
    expect(names(store.listRuns({ kind: 'finetune' }))).toEqual(['PGD-AT of hsic']);
    expect(names(store.listRuns({ experimentId: runs.hsic.experimentId, direction: 'asc' }))).toEqual([
      'MIMIR hsic',
      'MIMIR renyi',
    ]);
    expect(names(store.listRuns({ parentRunId: runs.hsic.id }))).toEqual(['PGD-AT of hsic']);
    expect(names(store.listRuns({ tag: 'paper', direction: 'asc' }))).toEqual(['MIMIR hsic', 'plain MAE']);
    expect(store.listRuns({ status: [] })).toEqual([]);
    expect(store.listTags()).toEqual([
      { tag: 'baseline', count: 1 },
      { tag: 'paper', count: 2 },
    ]);
  });

  it('searches names, notes, tags and config; every word must match; LIKE wildcards are literal', () => {
    const runs = seed();
    expect(names(store.listRuns({ text: 'renyi' }))).toEqual(['MIMIR renyi']); // name and config
    expect(names(store.listRuns({ text: 'DIVERGED' }))).toEqual(['MIMIR renyi']); // note, any case
    expect(names(store.listRuns({ text: 'baseline' }))).toEqual(['plain MAE']); // tag
    expect(names(store.listRuns({ text: '"estimator":"hsic"' }))).toEqual(['MIMIR hsic']); // config JSON
    expect(names(store.listRuns({ text: 'mimir paper' }))).toEqual(['MIMIR hsic']);
    expect(names(store.listRuns({ text: runs.mae.id.slice(0, 8) }))).toEqual(['plain MAE']);
    expect(store.listRuns({ text: '%' })).toEqual([]);
    expect(store.listRuns({ text: 'hs_c' })).toEqual([]);
  });

  it('sorts by a field or a summary metric, either way, runs without it last', () => {
    seed();
    expect(names(store.listRuns({ sort: 'name', direction: 'asc' }))).toEqual([
      'MIMIR hsic',
      'MIMIR renyi',
      'PGD-AT of hsic',
      'plain MAE',
    ]);
    expect(names(store.listRuns({ sort: 'createdAt', direction: 'asc' }))[0]).toBe('MIMIR hsic');
    expect(names(store.listRuns({ sort: 'summary:loss', direction: 'asc' })).slice(0, 2)).toEqual([
      'MIMIR renyi',
      'MIMIR hsic',
    ]);
    expect(names(store.listRuns({ sort: 'summary:loss', direction: 'desc' })).slice(0, 2)).toEqual([
      'MIMIR hsic',
      'MIMIR renyi',
    ]);
    expect(names(store.listRuns({ sort: "summary:it's", direction: 'asc' }))).toHaveLength(4); // quoted safely
    expect(names(store.listRuns({ sort: 'name', direction: 'asc', limit: 2, offset: 1 }))).toEqual([
      'MIMIR renyi',
      'PGD-AT of hsic',
    ]);
  });
});

describe('markInterruptedRuns', () => {
  it('turns runs left running into interrupted ones, returns them, keeps the others', () => {
    const a = runIn('running');
    store.recordEvent(a.id, { type: 'checkpoint', step: 300, epoch: 3, path: '/runs/a/ckpt-300' });
    store.recordEvent(a.id, {
      type: 'progress',
      epoch: 4,
      epochs: 10,
      step: 345,
      totalSteps: 1000,
      imagesPerSecond: 1,
      etaSeconds: 1,
    });
    const b = runIn('running');
    const owned = runIn('running');
    const queued = runIn('queued');
    const done = runIn('done');
    clock = 50_000;

    const interrupted = store.markInterruptedRuns((run) => run.id === owned.id);
    expect(interrupted.map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
    for (const run of interrupted) expect(run).toMatchObject({ status: 'interrupted', endedAt: 50_000, pid: null });
    expect(store.getRun(owned.id)?.status).toBe('running');
    expect(store.getRun(queued.id)?.status).toBe('queued');
    expect(store.getRun(done.id)?.status).toBe('done');
    expect(store.listLogs(a.id, { minLevel: 'warn' }).map((e) => e.message)).toEqual([
      'status running -> interrupted: MIMIR stopped while this run was running (last step 345); it can be resumed from /runs/a/ckpt-300.',
    ]);
    expect(store.markInterruptedRuns((run) => run.id === owned.id)).toEqual([]); // nothing left to do
    expect(store.updateRunStatus(a.id, 'queued').status).toBe('queued'); // resume
  });
});

describe('metric series', () => {
  it('returns small series whole, one per (run, key), empty where nothing was logged', () => {
    const a = runIn('running');
    const b = runIn('running');
    for (let step = 0; step < 5; step += 1) {
      store.recordEvent(a.id, { type: 'metrics', step, epoch: 0, values: { loss: 10 - step, mi: step } });
    }
    store.recordEvent(b.id, { type: 'metrics', step: 3, epoch: 0, values: { loss: 7 } });
    const series = store.getMetricSeries([a.id, b.id], ['loss', 'mi']);
    expect(series.map((s) => [s.runId, s.key, s.steps, s.values, s.total, s.downsampled])).toEqual([
      [a.id, 'loss', [0, 1, 2, 3, 4], [10, 9, 8, 7, 6], 5, false],
      [a.id, 'mi', [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 5, false],
      [b.id, 'loss', [3], [7], 1, false],
      [b.id, 'mi', [], [], 0, false],
    ]);
    const window = store.getMetricSeries([a.id], ['loss'], { fromStep: 2, toStep: 3 });
    expect(window[0]?.steps).toEqual([2, 3]);
  });

  it("downsamples keeping first, last, and each bucket's minimum and maximum", () => {
    const run = runIn('running');
    // Deterministic noise with planted extremes that a stride-based sampler would miss.
    const n = 20_000;
    const values = Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 1 / (1 + i / 1000));
    values[7_777] = 50;
    values[12_345] = -50;
    values[19_998] = Number.NaN; // the loss diverged just before the end
    const events: RunEvent[] = values.map((v, step) => ({ type: 'metrics', step, epoch: 0, values: { loss: v } }));
    store.recordEvents(run.id, events);

    const maxPoints = 202;
    const [series] = store.getMetricSeries([run.id], ['loss'], { maxPoints });
    if (series === undefined) throw new Error('no series');
    expect(series.total).toBe(n);
    expect(series.downsampled).toBe(true);
    expect(series.steps.length).toBeLessThanOrEqual(maxPoints + 1); // +1: the bucket with the NaN
    expect(series.steps.length).toBeGreaterThan(maxPoints * 0.9);
    expect(series.steps[0]).toBe(0);
    expect(series.steps.at(-1)).toBe(n - 1);
    expect(series.steps).toEqual([...series.steps].sort((x, y) => x - y));
    expect(new Set(series.steps).size).toBe(series.steps.length);
    expect(series.steps).toContain(7_777);
    expect(series.steps).toContain(12_345);
    expect(series.values[series.steps.indexOf(19_998)]).toBeNull();
    // Every bucket's extremes, recomputed here by brute force, are among the points kept.
    const buckets = Math.floor((maxPoints - 2) / 2);
    const width = n / buckets;
    for (let b = 0; b < buckets; b += 1) {
      const inBucket = values
        .map((value, step) => ({ value, step }))
        .filter(({ step, value }) => Math.min(buckets - 1, Math.floor(step / width)) === b && Number.isFinite(value));
      const min = inBucket.reduce((m, p) => (p.value < m.value ? p : m));
      const max = inBucket.reduce((m, p) => (p.value > m.value ? p : m));
      expect(series.values[series.steps.indexOf(min.step)]).toBeCloseTo(min.value, 12);
      expect(series.values[series.steps.indexOf(max.step)]).toBeCloseTo(max.value, 12);
    }
  });
});

describe('tags, notes, artifacts, evaluations, logs', () => {
  it('tags are trimmed, unique per run, validated', () => {
    const run = newRun();
    store.addTag(run.id, ' paper ');
    expect(store.addTag(run.id, 'paper').tags).toEqual(['paper']);
    expect(store.addTag(run.id, 'ablation').tags).toEqual(['ablation', 'paper']);
    expect(store.removeTag(run.id, 'paper').tags).toEqual(['ablation']);
    expect(storeError(() => store.addTag(run.id, '   ')).code).toBe('invalid-input');
    expect(storeError(() => store.addTag('ghost', 'x')).code).toBe('not-found');
  });

  it('a note is set, replaced, and removed by an empty text', () => {
    const run = newRun();
    expect(store.setNote(run.id, 'first').note).toBe('first');
    expect(store.setNote(run.id, 'second').note).toBe('second');
    expect(store.setNote(run.id, '  ').note).toBeNull();
  });

  it('artifacts added outside events are listed by kind and step', () => {
    const run = newRun();
    store.addArtifact(run.id, { kind: 'export', path: '/runs/a/model.safetensors', metadata: { format: 'timm' } });
    store.addArtifact(run.id, { kind: 'plot', path: '/runs/a/landscape.png', step: 10 });
    expect(store.listArtifacts(run.id).map((a) => [a.kind, a.path, a.step, a.metadata])).toEqual([
      ['export', '/runs/a/model.safetensors', null, { format: 'timm' }],
      ['plot', '/runs/a/landscape.png', 10, {}],
    ]);
    expect(store.listArtifacts(run.id, 'plot')).toHaveLength(1);
  });

  it('evaluations are kept with their protocol and found from the model run', () => {
    const model = newRun('ft', { outDir: '/runs/ft' });
    const evalRun = store.createRun({ name: 'AutoAttack', kind: 'evaluate', config: { checkpoint: '/runs/ft/final' } });
    const protocol = {
      threat: 'linf',
      eps: 8 / 255,
      attacks: ['apgd-ce', 'apgd-t', 'fab-t', 'square'],
      seed: 0,
      n: 1000,
    };
    const results = { natural: 0.8656, robust: 0.4539, perAttack: { 'apgd-ce': 0.47 } };
    const saved = store.addEvaluation(evalRun.id, { modelCheckpoint: '/runs/ft/final', protocol, results });
    store.addEvaluation(model.id, {
      modelCheckpoint: '/runs/ft/final',
      protocol: { threat: 'clean' },
      results: { natural: 0.86 },
    });
    expect(saved).toMatchObject({
      runId: evalRun.id,
      modelCheckpoint: '/runs/ft/final',
      protocol,
      results,
      createdAt: clock,
    });
    expect(store.listEvaluations(evalRun.id)).toEqual([saved]);
    expect(store.listEvaluationsOfModel(model.id).map((e) => e.runId)).toEqual([evalRun.id, model.id]);
  });

  it('logs page with afterId', () => {
    const run = runIn('running');
    for (let i = 0; i < 5; i += 1) store.recordEvent(run.id, { type: 'log', level: 'info', message: `line ${i}` });
    const all = store.listLogs(run.id);
    const last = all.at(-3);
    if (last === undefined) throw new Error('missing log');
    expect(store.listLogs(run.id, { afterId: last.id }).map((e) => e.message)).toEqual(['line 3', 'line 4']);
    expect(store.listLogs(run.id, { limit: 1 })).toHaveLength(1);
  });
});
