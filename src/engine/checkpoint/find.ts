import { errorMessage } from '@shared/unknown-value';
/**
 * Finding the checkpoint to resume from (--resume). The `latest` pointer names it; a checkpoint
 * directory that is newer than the pointer (a crash between the directory's rename and the
 * pointer's update) wins. The chosen one is verified; when it is damaged the result says so and
 * offers the newest good one, which the caller may use only by choice, never silently.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { RUN_CHECKPOINTS_DIR, type CheckpointManifest } from '@shared/checkpoint';
import { CheckpointError, readCheckpoint, readManifest } from './checkpoint-files';
import { isCheckpointName, readLatestPointer } from './save';

export interface CheckpointProblem {
  path: string;
  problem: string;
}

export interface GoodCheckpoint {
  path: string;
  manifest: CheckpointManifest;
}

interface Common {
  /** Hidden leftovers of interrupted saves or replacements, ignored. */
  ignored: string[];
  /** Other checkpoint directories that could not be read. */
  problems: CheckpointProblem[];
}

export type LatestCheckpoint =
  | ({ status: 'none' } & Common)
  | ({ status: 'ok' } & GoodCheckpoint & Common)
  | ({ status: 'corrupt'; path: string; problem: string; previous: GoodCheckpoint | null } & Common);

export interface FindOptions {
  /** full (default): verify every checksum of the chosen checkpoint; manifest: read only the manifests. */
  verify?: 'full' | 'manifest';
}

interface Candidate {
  name: string;
  path: string;
  manifest: CheckpointManifest | null;
  problem: string | null;
  mtimeMs: number;
}

export async function findLatestCheckpoint(dir: string, options: FindOptions = {}): Promise<LatestCheckpoint> {
  const ignored: string[] = [];
  const candidates: Candidate[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return { status: 'none', ignored, problems: [] };
  }
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const full = path.join(dir, entry.name);
    if (!isCheckpointName(entry.name)) {
      if (entry.name.startsWith('.')) ignored.push(full);
      continue;
    }
    const mtimeMs = (await stat(full)).mtimeMs;
    try {
      candidates.push({ name: entry.name, path: full, manifest: await readManifest(full), problem: null, mtimeMs });
    } catch (error) {
      candidates.push({ name: entry.name, path: full, manifest: null, problem: problemOf(error), mtimeMs });
    }
  }
  if (candidates.length === 0) return { status: 'none', ignored, problems: [] };

  const readable = candidates
    .filter((c): c is Candidate & { manifest: CheckpointManifest } => c.manifest !== null)
    .sort((a, b) => b.manifest.step - a.manifest.step || b.manifest.epoch - a.manifest.epoch || b.mtimeMs - a.mtimeMs);
  const pointerName = await readLatestPointer(dir);
  const pointed = candidates.find((c) => c.name === pointerName);
  let latest: Candidate;
  if (pointed && (pointed.manifest === null || readable[0] === undefined || !isNewer(readable[0], pointed))) {
    latest = pointed;
  } else if (readable[0] && !candidates.some((c) => c.manifest === null && c.mtimeMs > readable[0].mtimeMs)) {
    latest = readable[0];
  } else {
    // No usable pointer and an unreadable directory newer than every readable one: that is the latest.
    latest = [...candidates].sort((a, b) => b.mtimeMs - a.mtimeMs)[0];
  }

  const problems = candidates
    .filter((c) => c !== latest && c.problem !== null)
    .map((c) => ({ path: c.path, problem: c.problem ?? '' }));
  const latestProblem = latest.problem ?? (options.verify === 'manifest' ? null : await verify(latest.path));
  if (latestProblem === null && latest.manifest) {
    return { status: 'ok', path: latest.path, manifest: latest.manifest, ignored, problems };
  }
  let previous: GoodCheckpoint | null = null;
  for (const candidate of readable) {
    if (candidate === latest) continue;
    const problem = options.verify === 'manifest' ? null : await verify(candidate.path);
    if (problem === null) {
      previous = { path: candidate.path, manifest: candidate.manifest };
      break;
    }
    problems.push({ path: candidate.path, problem });
  }
  return { status: 'corrupt', path: latest.path, problem: latestProblem ?? 'unreadable', previous, ignored, problems };
}

function isNewer(a: Candidate & { manifest: CheckpointManifest }, b: Candidate): boolean {
  if (!b.manifest) return false;
  return (
    a.manifest.step > b.manifest.step || (a.manifest.step === b.manifest.step && a.manifest.epoch > b.manifest.epoch)
  );
}

async function verify(checkpoint: string): Promise<string | null> {
  try {
    await readCheckpoint(checkpoint);
    return null;
  } catch (error) {
    return problemOf(error);
  }
}

function problemOf(error: unknown): string {
  if (error instanceof CheckpointError) return error.message;
  return errorMessage(error);
}

/**
 * The checkpoint a resume continues from: `chosen` (a checkpoint the user named, verified; a damaged
 * one is reported, never replaced by another) or else the latest in `dir`.
 */
export async function findResumeCheckpoint(dir: string, chosen: string | null): Promise<LatestCheckpoint> {
  if (chosen === null) return findLatestCheckpoint(dir);
  const none = { ignored: [], problems: [] };
  let manifest: CheckpointManifest;
  try {
    manifest = await readManifest(chosen);
  } catch (error) {
    return { status: 'corrupt', path: chosen, problem: problemOf(error), previous: null, ...none };
  }
  const problem = await verify(chosen);
  if (problem !== null) return { status: 'corrupt', path: chosen, problem, previous: null, ...none };
  return { status: 'ok', path: chosen, manifest, ...none };
}

/**
 * What `--resume <path>` names: a run folder (continue from its latest checkpoint), or one of its
 * checkpoints, `<run>/checkpoints/<name>` (continue from that one; the run folder is two levels up).
 */
export function resumeTarget(arg: string): { outDir: string; checkpoint: string | null } {
  const resolved = path.resolve(arg);
  const parent = path.dirname(resolved);
  if (path.basename(parent) === RUN_CHECKPOINTS_DIR && isCheckpointName(path.basename(resolved))) {
    return { outDir: path.dirname(parent), checkpoint: resolved };
  }
  return { outDir: arg, checkpoint: null };
}

/** A one-paragraph explanation of a findLatestCheckpoint result for a CLI or a log. */
export function describeLatest(result: LatestCheckpoint): string {
  switch (result.status) {
    case 'none':
      return 'no checkpoint found';
    case 'ok':
      return `latest checkpoint: ${result.path} (epoch ${result.manifest.epoch}, step ${result.manifest.step})`;
    case 'corrupt': {
      const offer = result.previous
        ? ` The newest good one is ${result.previous.path} (epoch ${result.previous.manifest.epoch}, step ${result.previous.manifest.step}); resume from it explicitly if you want it (--resume ${result.previous.path}).`
        : ' No good checkpoint is left.';
      return `The latest checkpoint is damaged: ${result.problem}.${offer}`;
    }
  }
}
