import path from 'node:path';
import { LANDSCAPE_FILE } from '@shared/landscape';
import type { SqliteDatabase } from './database';

/**
 * Migration 5: a run's output typed. Before it, a `done` event named one `checkpoint` whatever the
 * run was, and the store kept it as the run's last checkpoint and as a final checkpoint artifact: a
 * training run's final checkpoint, but an evaluation's report.json and a landscape's input model
 * (another run's checkpoint). Now runs.output_kind/output_path hold what the run produced, and
 * last_checkpoint only a training run's checkpoint.
 */
export function typeRunOutputs(db: SqliteDatabase): void {
  db.exec(`
    ALTER TABLE runs ADD COLUMN output_kind TEXT
      CHECK (output_kind IS NULL OR output_kind IN ('checkpoint', 'report', 'landscape'));
    ALTER TABLE runs ADD COLUMN output_path TEXT;

    -- A training run that wrote no checkpoint ended with an empty one.
    UPDATE runs SET last_checkpoint = NULL WHERE last_checkpoint = '';
    UPDATE runs SET output_kind = 'checkpoint', output_path = last_checkpoint
      WHERE kind IN ('pretrain', 'finetune') AND status = 'done' AND last_checkpoint IS NOT NULL;

    -- An evaluation's "final checkpoint" was its report.
    UPDATE runs SET output_kind = 'report', output_path = last_checkpoint
      WHERE kind = 'evaluate' AND status = 'done' AND last_checkpoint IS NOT NULL;
    UPDATE OR IGNORE artifacts SET kind = 'report'
      WHERE kind = 'checkpoint' AND run_id IN (SELECT id FROM runs WHERE kind = 'evaluate');

    -- A landscape's was the model it was computed around, another run's checkpoint: not its own.
    DELETE FROM artifacts WHERE kind = 'checkpoint' AND run_id IN (SELECT id FROM runs WHERE kind IN ('evaluate', 'landscape'));
    UPDATE runs SET last_checkpoint = NULL WHERE kind IN ('evaluate', 'landscape');
  `);
  // A landscape's output is its landscape.json (the file the engine writes in its folder).
  const landscapes = db
    .prepare(
      "SELECT id, out_dir, step, epoch, coalesce(ended_at, created_at) AS ended_at FROM runs WHERE kind = 'landscape' AND status = 'done'",
    )
    .all() as { id: string; out_dir: string | null; step: number | null; epoch: number | null; ended_at: number }[];
  const setOutput = db.prepare("UPDATE runs SET output_kind = 'landscape', output_path = ? WHERE id = ?");
  const addPlot = db.prepare(
    `INSERT OR IGNORE INTO artifacts (run_id, kind, path, step, metadata, created_at)
     VALUES (?, 'plot', ?, ?, json_object('epoch', ?, 'final', json('true')), ?)`,
  );
  for (const run of landscapes) {
    if (run.out_dir === null) continue;
    const file = path.join(run.out_dir, LANDSCAPE_FILE);
    setOutput.run(file, run.id);
    addPlot.run(run.id, file, run.step, run.epoch, run.ended_at);
  }
}
