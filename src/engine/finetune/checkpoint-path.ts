import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CHECKPOINT_LATEST_FILE, CHECKPOINT_MANIFEST_FILE, RUN_CHECKPOINTS_DIR } from '@shared/checkpoint';
import { describeLatest, findLatestCheckpoint } from '../checkpoint';

export { RUN_CHECKPOINTS_DIR };

/**
 * The checkpoint directory a user's path names: a checkpoint itself (it holds checkpoint.json), a
 * folder of checkpoints (it holds `latest`), or a run's output folder (it holds checkpoints/). For
 * the latter two, the newest good checkpoint; a damaged newest one is an error that names the
 * previous good one (never taken silently).
 */
export async function resolveCheckpointPath(input: string): Promise<string> {
  const dir = path.resolve(input);
  // Asynchronous: the app's export runs this in Electron's main process.
  const exists = (file: string) =>
    stat(file).then(
      () => true,
      () => false,
    );
  const info = await stat(dir).catch(() => null);
  if (!info) throw new Error(`${input}: no such checkpoint or run folder.`);
  if (!info.isDirectory()) {
    throw new Error(`${input} is a file; give a checkpoint folder (with ${CHECKPOINT_MANIFEST_FILE}) or a run folder.`);
  }
  if (await exists(path.join(dir, CHECKPOINT_MANIFEST_FILE))) return dir;
  const folder = (await exists(path.join(dir, CHECKPOINT_LATEST_FILE)))
    ? dir
    : (await exists(path.join(dir, RUN_CHECKPOINTS_DIR)))
      ? path.join(dir, RUN_CHECKPOINTS_DIR)
      : null;
  if (folder === null) {
    throw new Error(
      `${input} is neither a checkpoint (no ${CHECKPOINT_MANIFEST_FILE}) nor a run folder (no ${RUN_CHECKPOINTS_DIR}/).`,
    );
  }
  const latest = await findLatestCheckpoint(folder);
  if (latest.status === 'ok') return latest.path;
  if (latest.status === 'none') throw new Error(`${input} holds no checkpoint (${folder} is empty).`);
  throw new Error(`${input}: ${describeLatest(latest)}`);
}
