import { isRecord } from '@shared/unknown-value';
/**
 * Reading and verifying one checkpoint directory: the manifest against its schema, each file
 * against its recorded size and sha256, each safetensors file against the format.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_MANIFEST_FILE,
  CHECKPOINT_MODEL_FILE,
  CHECKPOINT_OPTIMIZER_FILE,
  CHECKPOINT_VERSION,
  CheckpointManifest,
  type CheckpointFileInfo,
} from '@shared/checkpoint';
import { decodeSafetensors, SafetensorsError, type SafetensorsFile } from '../io/safetensors';

export class CheckpointError extends Error {
  constructor(
    readonly checkpoint: string,
    problem: string,
  ) {
    super(`checkpoint ${checkpoint}: ${problem}`);
    this.name = 'CheckpointError';
  }
}

export interface CheckpointContents {
  path: string;
  manifest: CheckpointManifest;
  model: SafetensorsFile;
  optimizer: SafetensorsFile | null;
}

/** Read and validate checkpoint.json. */
export async function readManifest(checkpoint: string): Promise<CheckpointManifest> {
  const file = path.join(checkpoint, CHECKPOINT_MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CheckpointError(checkpoint, `cannot read ${CHECKPOINT_MANIFEST_FILE} (${errorCode(error)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(
      checkpoint,
      `${CHECKPOINT_MANIFEST_FILE} is not valid JSON (${(error as Error).message})`,
    );
  }
  if (isRecord(json)) {
    const { format, version } = json;
    if (format !== CHECKPOINT_FORMAT) {
      throw new CheckpointError(
        checkpoint,
        `${CHECKPOINT_MANIFEST_FILE} is not a MIMIR checkpoint (format ${JSON.stringify(format)})`,
      );
    }
    if (typeof version === 'number' && version > CHECKPOINT_VERSION) {
      throw new CheckpointError(
        checkpoint,
        `format version ${version} is newer than this program reads (${CHECKPOINT_VERSION}); update MIMIR Workbench`,
      );
    }
  }
  const parsed = CheckpointManifest.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new CheckpointError(checkpoint, `${CHECKPOINT_MANIFEST_FILE} is invalid: ${issues.join('; ')}`);
  }
  return parsed.data;
}

/** Read one data file, check its size and sha256 against the manifest, and parse it. */
async function readVerified(checkpoint: string, name: string, info: CheckpointFileInfo): Promise<SafetensorsFile> {
  const file = path.join(checkpoint, name);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new CheckpointError(checkpoint, `${name} is missing or unreadable (${errorCode(error)})`);
  }
  if (bytes.length !== info.bytes) {
    const hint = bytes.length < info.bytes ? ' (truncated)' : '';
    throw new CheckpointError(checkpoint, `${name} is ${bytes.length} bytes, the manifest says ${info.bytes}${hint}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== info.sha256) {
    throw new CheckpointError(
      checkpoint,
      `${name} does not match its checksum (sha256 ${sha256}, the manifest says ${info.sha256}): the file was changed or damaged`,
    );
  }
  try {
    return decodeSafetensors(bytes, name);
  } catch (error) {
    if (error instanceof SafetensorsError) throw new CheckpointError(checkpoint, error.message);
    throw error;
  }
}

/** Read a whole checkpoint, verifying every checksum. Throws CheckpointError naming the problem. */
export async function readCheckpoint(checkpoint: string): Promise<CheckpointContents> {
  const manifest = await readManifest(checkpoint);
  const model = await readVerified(checkpoint, CHECKPOINT_MODEL_FILE, manifest.files[CHECKPOINT_MODEL_FILE]);
  const optimizerInfo = manifest.files[CHECKPOINT_OPTIMIZER_FILE];
  if ((optimizerInfo === undefined) !== (manifest.optimizer === null)) {
    throw new CheckpointError(
      checkpoint,
      `the manifest's optimizer section and its ${CHECKPOINT_OPTIMIZER_FILE} entry disagree`,
    );
  }
  const optimizer = optimizerInfo ? await readVerified(checkpoint, CHECKPOINT_OPTIMIZER_FILE, optimizerInfo) : null;
  return { path: checkpoint, manifest, model, optimizer };
}

/** Whether `checkpoint` is a directory (false for a missing one). */
export async function isDirectory(checkpoint: string): Promise<boolean> {
  try {
    return (await stat(checkpoint)).isDirectory();
  } catch {
    return false;
  }
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}
