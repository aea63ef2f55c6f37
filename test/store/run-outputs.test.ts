import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/shared/run-events';
import { openDatabase, schemaVersion } from '../../src/store/database';
import { MIGRATIONS } from '../../src/store/migrations';
import { RunStore } from '../../src/store/run-store';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const done = (output: Extract<RunEvent, { type: 'done' }>['output']): RunEvent => ({
  type: 'done',
  step: 4,
  epoch: 1,
  output,
  seconds: 1,
  summary: {},
});

describe("a run's typed output", () => {
  it('a done evaluation or landscape records its report or landscape.json, not a checkpoint of the run', () => {
    const store = RunStore.open(':memory:');
    try {
      const evaluation = store.createRun({ name: 'eval', kind: 'evaluate' });
      const landscape = store.createRun({ name: 'landscape', kind: 'landscape' });
      for (const run of [evaluation, landscape]) store.updateRunStatus(run.id, 'running');
      store.recordEvent(evaluation.id, done({ kind: 'report', path: '/runs/e/report.json' }));
      store.recordEvent(landscape.id, done({ kind: 'landscape', path: '/runs/l/landscape.json' }));

      expect(store.getRun(evaluation.id)).toMatchObject({
        lastCheckpoint: null,
        output: { kind: 'report', path: '/runs/e/report.json' },
      });
      expect(store.getRun(landscape.id)).toMatchObject({
        lastCheckpoint: null,
        output: { kind: 'landscape', path: '/runs/l/landscape.json' },
      });
      expect(store.listArtifacts(evaluation.id).map((a) => [a.kind, a.path, a.metadata.final])).toEqual([
        ['report', '/runs/e/report.json', true],
      ]);
      expect(store.listArtifacts(landscape.id).map((a) => [a.kind, a.path, a.metadata.final])).toEqual([
        ['plot', '/runs/l/landscape.json', true],
      ]);
    } finally {
      store.close();
    }
  });

  it('a training run done without a checkpoint has no output and keeps the one it resumed from', () => {
    const store = RunStore.open(':memory:');
    try {
      const run = store.createRun({ name: 'p', kind: 'pretrain' });
      store.recordEvent(run.id, {
        type: 'started',
        runKind: 'pretrain',
        backend: 'wasm',
        outDir: '/runs/p',
        step: 8,
        epoch: 2,
        totalSteps: 8,
        stepsPerEpoch: 4,
        resumedFrom: '/runs/p/checkpoints/epoch-0002',
      });
      store.recordEvent(run.id, done(null));
      expect(store.getRun(run.id)).toMatchObject({
        status: 'done',
        output: null,
        lastCheckpoint: '/runs/p/checkpoints/epoch-0002',
      });
    } finally {
      store.close();
    }
  });

  it('migration 5 converts rows stored with the old done event (checkpoint: whatever the run produced)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-outputs-'));
    dirs.push(dir);
    const file = path.join(dir, 'store.db');
    const old = openDatabase(file, { migrations: MIGRATIONS.slice(0, 4) });
    expect(schemaVersion(old)).toBe(4);
    old.prepare("INSERT INTO experiments (id, name, created_at) VALUES (1, 'Default', 0)").run();
    const addRun = old.prepare(
      `INSERT INTO runs (id, experiment_id, name, kind, status, out_dir, created_at, ended_at, step, epoch, last_checkpoint)
       VALUES (?, 1, ?, ?, ?, ?, 0, 50, 4, 1, ?)`,
    );
    const addArtifact = old.prepare(
      `INSERT INTO artifacts (run_id, kind, path, step, metadata, created_at)
       VALUES (?, 'checkpoint', ?, 4, '{"epoch":1,"final":true}', 50)`,
    );
    const model = '/runs/p/checkpoints/epoch-0001';
    addRun.run('p', 'pretrain', 'pretrain', 'done', '/runs/p', model);
    addArtifact.run('p', model);
    addRun.run('f', 'failed pretrain', 'pretrain', 'failed', '/runs/f', '/runs/f/checkpoints/epoch-0001');
    addRun.run('z', 'no checkpoint', 'finetune', 'done', '/runs/z', '');
    addRun.run('e', 'eval', 'evaluate', 'done', '/runs/e', '/runs/e/report.json');
    addArtifact.run('e', '/runs/e/report.json');
    addRun.run('l', 'landscape', 'landscape', 'done', '/runs/l', model);
    addArtifact.run('l', model);
    old.close();

    const store = RunStore.open(file);
    try {
      expect(schemaVersion(store.db)).toBe(MIGRATIONS.length);
      const view = (id: string) => {
        const run = store.getRun(id);
        return { lastCheckpoint: run?.lastCheckpoint, output: run?.output };
      };
      expect(view('p')).toEqual({ lastCheckpoint: model, output: { kind: 'checkpoint', path: model } });
      expect(view('f')).toEqual({ lastCheckpoint: '/runs/f/checkpoints/epoch-0001', output: null });
      expect(view('z')).toEqual({ lastCheckpoint: null, output: null });
      expect(view('e')).toEqual({ lastCheckpoint: null, output: { kind: 'report', path: '/runs/e/report.json' } });
      const landscapeFile = path.join('/runs/l', 'landscape.json');
      expect(view('l')).toEqual({ lastCheckpoint: null, output: { kind: 'landscape', path: landscapeFile } });

      const artifacts = (id: string) => store.listArtifacts(id).map((a) => [a.kind, a.path, a.metadata.final]);
      expect(artifacts('p')).toEqual([['checkpoint', model, true]]);
      expect(artifacts('e')).toEqual([['report', '/runs/e/report.json', true]]);
      // The landscape's model belongs to run p, not to the landscape.
      expect(artifacts('l')).toEqual([['plot', landscapeFile, true]]);
    } finally {
      store.close();
    }
  });
});
