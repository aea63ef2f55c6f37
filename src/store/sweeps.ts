import path from 'node:path';
import { Sweep, SweepSpec, expandSweep, type SweepParent, type SweepSpecInput } from '@shared/sweep';
import type { Run } from '@shared/store-types';
import type { SqliteDatabase } from './database';
import { StoreError } from './errors';
import { newRunId, type RunStore } from './run-store';

/**
 * Sweeps in the store: an experiment named after the sweep, its spec in `sweeps`, and one queued run
 * per expanded config. Kept apart from RunStore, which it only uses through its public methods.
 */

interface SweepRow {
  experiment_id: number;
  spec: string;
  created_at: number;
  name: string;
}

const SELECT = 'SELECT s.*, e.name AS name FROM sweeps s JOIN experiments e ON e.id = s.experiment_id';

function prepare(db: SqliteDatabase) {
  return {
    insert: db.prepare('INSERT INTO sweeps (experiment_id, spec, created_at) VALUES (?, ?, ?)'),
    byExperiment: db.prepare(`${SELECT} WHERE s.experiment_id = ?`),
    all: db.prepare(`${SELECT} ORDER BY s.created_at DESC, s.experiment_id DESC`),
    runIds: db.prepare('SELECT id FROM runs WHERE experiment_id = ? ORDER BY rowid').pluck(),
  };
}

/** The sweep statements of each open store, prepared once. */
const prepared = new WeakMap<SqliteDatabase, ReturnType<typeof prepare>>();

function statements(store: RunStore): ReturnType<typeof prepare> {
  let stmt = prepared.get(store.db);
  if (stmt === undefined) {
    stmt = prepare(store.db);
    prepared.set(store.db, stmt);
  }
  return stmt;
}

const toSweep = (row: SweepRow): Sweep =>
  Sweep.parse({
    experimentId: row.experiment_id,
    name: row.name,
    spec: JSON.parse(row.spec) as unknown,
    createdAt: row.created_at,
  });

/**
 * Expand `input` and store it: the experiment, the spec and every run (queued, each with its own
 * folder under `runsDir`), all or nothing. Refuses a spec that does not expand, with every reason.
 */
export function createSweep(
  store: RunStore,
  input: SweepSpecInput,
  runsDir: string,
  now: () => number = Date.now,
): { sweep: Sweep; runs: Run[] } {
  const parsed = SweepSpec.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new StoreError('invalid-input', `The sweep is refused:\n${issues.join('\n')}`);
  }
  const spec = parsed.data;
  const expansion = expandSweep(spec, sweepParents(store, spec.fromRuns));
  if (!expansion.ok) throw new StoreError('invalid-input', `The sweep is refused:\n${expansion.issues.join('\n')}`);
  const create = store.db.transaction(() => {
    const experiment = store.createExperiment({
      name: spec.name,
      description: `Sweep of ${expansion.runs.length} ${spec.kind} runs.`,
    });
    statements(store).insert.run(experiment.id, JSON.stringify(spec), now());
    const runs = expansion.runs.map((planned) => {
      const id = newRunId();
      return store.createRun({
        id,
        experimentId: experiment.id,
        name: planned.name,
        kind: spec.kind,
        config: planned.config,
        outDir: path.join(runsDir, id),
      });
    });
    return { sweep: requireSweep(store, experiment.id), runs };
  });
  return create.immediate();
}

/** The runs a sweep starts from: each must exist, be done and have its folder. */
function sweepParents(store: RunStore, ids: readonly string[]): SweepParent[] {
  return ids.map((id) => {
    const run = store.getRun(id);
    if (!run) throw new StoreError('not-found', `The sweep starts from run ${id}, which is not in the store.`);
    if (run.status !== 'done') {
      throw new StoreError(
        'invalid-input',
        `The sweep starts from run "${run.name}" (${id}), which is ${run.status}: only finished runs have a final checkpoint.`,
      );
    }
    if (!run.outDir) {
      throw new StoreError('invalid-input', `The sweep starts from run "${run.name}" (${id}), which has no folder.`);
    }
    const seed = typeof run.config.seed === 'number' ? run.config.seed : 0;
    return { id: run.id, name: run.name, outDir: run.outDir, seed };
  });
}

export function getSweep(store: RunStore, experimentId: number): Sweep | null {
  const row = statements(store).byExperiment.get(experimentId) as SweepRow | undefined;
  return row === undefined ? null : toSweep(row);
}

export function requireSweep(store: RunStore, experimentId: number): Sweep {
  const sweep = getSweep(store, experimentId);
  if (sweep === null) throw new StoreError('not-found', `Experiment ${experimentId} is not a sweep.`);
  return sweep;
}

/** Every sweep, newest first. */
export function listSweeps(store: RunStore): Sweep[] {
  const rows = statements(store).all.all() as SweepRow[];
  return rows.map(toSweep);
}

/** A sweep's runs in the order they were expanded (grid order, seeds innermost). */
export function sweepRuns(store: RunStore, experimentId: number): Run[] {
  const ids = statements(store).runIds.all(experimentId) as string[];
  return ids.flatMap((id) => {
    const run = store.getRun(id);
    return run ? [run] : [];
  });
}
