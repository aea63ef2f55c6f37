import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewRun } from '../../src/shared/store-types';
import { migrate, openDatabase, type SqliteDatabase } from '../../src/store/database';
import { MIGRATIONS } from '../../src/store/migrations';
import { RunStore } from '../../src/store/run-store';

let store: RunStore;
beforeEach(() => {
  store = RunStore.open(':memory:');
});
afterEach(() => {
  store.close();
});

const fromCheckpoint = (checkpoint: string) => ({ method: 'pgd-at', source: { kind: 'pretrained', checkpoint } });

describe('a run’s parent is the run owning the checkpoint its config names', () => {
  it('a duplicated fine-tuning run that picks another checkpoint gets that checkpoint’s run, not the old parent', () => {
    const mae = store.createRun({ name: 'MAE', kind: 'pretrain', outDir: '/data/runs/mae' });
    const mimir = store.createRun({ name: 'MIMIR', kind: 'pretrain', outDir: '/data/runs/mimir' });
    // What Duplicate sent: the MIMIR fine-tune's parent, with the source changed to the MAE checkpoint.
    const duplicated = store.createRun({
      name: 'PGD-AT of MAE',
      kind: 'finetune',
      config: fromCheckpoint('/data/runs/mae/checkpoints/epoch-0002'),
      outDir: '/data/runs/ft-mae',
      parentRunId: mimir.id,
    } as NewRun);
    expect(duplicated.parentRunId).toBe(mae.id);

    // Compare follows pretrain -> its fine-tunes -> their evaluations: the evaluation is MAE's.
    const evaluation = store.createRun({
      name: 'AutoAttack',
      kind: 'evaluate',
      config: { checkpoint: '/data/runs/ft-mae/' },
    });
    expect(evaluation.parentRunId).toBe(duplicated.id);
    store.addEvaluation(evaluation.id, { modelCheckpoint: '/data/runs/ft-mae/final', protocol: {}, results: {} });
    expect(store.listRuns({ parentRunId: mae.id }).map((run) => run.id)).toEqual([duplicated.id]);
    expect(store.listRuns({ parentRunId: mimir.id })).toEqual([]);
    expect(store.listEvaluationsOfModel(duplicated.id).map((e) => e.runId)).toEqual([evaluation.id]);
  });

  it('takes the run folder itself, a folder inside it, relative spellings; not a sibling with a longer name', () => {
    const mae = store.createRun({ name: 'MAE', kind: 'pretrain', outDir: '/data/runs/mae' });
    const landscape = (checkpoint: string) =>
      store.createRun({ name: 'landscape', kind: 'landscape', config: { checkpoint } }).parentRunId;
    expect(landscape('/data/runs/mae')).toBe(mae.id);
    expect(landscape('/data/runs/mae/checkpoints')).toBe(mae.id);
    expect(landscape('/data/runs/x/../mae/checkpoints/final')).toBe(mae.id);
    expect(landscape('/data/runs/mae-2/checkpoints/final')).toBeNull();
    expect(landscape('/data/runs')).toBeNull();
    // Nothing to derive from: pre-training, fine-tuning from scratch.
    expect(store.createRun({ name: 'p', kind: 'pretrain', config: { checkpoint: '/data/runs/mae' } }).parentRunId).toBe(
      null,
    );
    const scratch = { method: 'pgd-at', source: { kind: 'scratch', model: 'micro' } };
    expect(store.createRun({ name: 's', kind: 'finetune', config: scratch }).parentRunId).toBeNull();
  });
});

describe('migration 2 re-derives the parents of rows written before the rule', () => {
  function insertRun(
    db: SqliteDatabase,
    id: string,
    kind: string,
    config: unknown,
    outDir: string,
    parent: string | null,
  ) {
    db.prepare(
      `INSERT INTO runs (id, experiment_id, name, kind, config, parent_run_id, out_dir, created_at)
       VALUES (?, 1, ?, ?, ?, ?, ?, 0)`,
    ).run(id, id, kind, JSON.stringify(config), parent, outDir);
  }

  it('fixes a wrong parent, clears one no checkpoint supports, keeps the right ones', () => {
    const db = openDatabase(':memory:', { migrations: MIGRATIONS.slice(0, 1) });
    try {
      db.prepare("INSERT INTO experiments (id, name, created_at) VALUES (1, 'Default', 0)").run();
      insertRun(db, 'mae', 'pretrain', {}, '/d/runs/mae', null);
      insertRun(db, 'mimir', 'pretrain', {}, '/d/runs/mimir', null);
      insertRun(db, 'ft-mae', 'finetune', fromCheckpoint('/d/runs/mae/checkpoints/final'), '/d/runs/ft-mae', 'mimir');
      insertRun(db, 'ft-mimir', 'finetune', fromCheckpoint('/d/runs/mimir'), '/d/runs/ft-mimir', 'mimir');
      insertRun(db, 'eval', 'evaluate', { checkpoint: '/d/runs/ft-mae/checkpoints/final' }, '/d/runs/eval', 'ft-mimir');
      insertRun(db, 'scratch', 'finetune', { source: { kind: 'scratch' } }, '/d/runs/scratch', 'mae');

      const result = migrate(db, MIGRATIONS);
      expect(result.applied).toContain(2);
      const parents = Object.fromEntries(
        (db.prepare('SELECT id, parent_run_id FROM runs').all() as { id: string; parent_run_id: string | null }[]).map(
          (row) => [row.id, row.parent_run_id],
        ),
      );
      expect(parents).toEqual({
        mae: null,
        mimir: null,
        'ft-mae': 'mae',
        'ft-mimir': 'mimir',
        eval: 'ft-mae',
        scratch: null,
      });
    } finally {
      db.close();
    }
  });
});
