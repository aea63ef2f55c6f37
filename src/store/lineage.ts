import path from 'node:path';
import { modelCheckpointOf } from '@shared/run-configs';
import type { SqliteDatabase } from './database';

/**
 * Lineage: a run's parent is the run that owns the checkpoint its config starts from (a fine-tuning
 * run's source, an evaluation's or landscape's model), i.e. the run whose output folder holds it. It
 * is derived here from the config, never taken from the caller, so that a duplicated run that picks
 * another checkpoint cannot keep the old parent and have Compare credit its results to the wrong model.
 */

/** Finds the run owning a path: the run whose output folder is the path or its nearest ancestor. */
export type CheckpointOwner = (checkpoint: string, exceptRunId?: string) => string | null;

/** The rows checkpointOwners reads. */
export const RUN_FOLDERS_SQL = 'SELECT id, out_dir FROM runs WHERE out_dir IS NOT NULL';

export function checkpointOwners(rows: readonly { id: string; out_dir: string }[]): CheckpointOwner {
  const byFolder = new Map(rows.map((row) => [path.resolve(row.out_dir), row.id]));
  return (checkpoint, exceptRunId) => {
    for (let dir = path.resolve(checkpoint); ; dir = path.dirname(dir)) {
      const owner = byFolder.get(dir);
      if (owner !== undefined && owner !== exceptRunId) return owner;
      if (path.dirname(dir) === dir) return null;
    }
  };
}

/** The parent of a run of `kind` with `config`: the owner of its checkpoint, or null. */
export function deriveParentRunId(
  owners: CheckpointOwner,
  kind: string,
  config: Record<string, unknown>,
  selfId?: string,
): string | null {
  const checkpoint = modelCheckpointOf(kind, config);
  return checkpoint === null ? null : owners(checkpoint, selfId);
}

/** Re-derive every run's parent from its config (a migration for rows written before the rule). */
export function rederiveParents(db: SqliteDatabase): void {
  const owners = checkpointOwners(db.prepare(RUN_FOLDERS_SQL).all() as { id: string; out_dir: string }[]);
  const rows = db.prepare('SELECT id, kind, config, parent_run_id FROM runs').all() as {
    id: string;
    kind: string;
    config: string;
    parent_run_id: string | null;
  }[];
  const update = db.prepare('UPDATE runs SET parent_run_id = ? WHERE id = ?');
  for (const row of rows) {
    const parent = deriveParentRunId(owners, row.kind, JSON.parse(row.config) as Record<string, unknown>, row.id);
    if (parent !== row.parent_run_id) update.run(parent, row.id);
  }
}
