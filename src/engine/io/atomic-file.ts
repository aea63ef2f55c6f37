/**
 * The one way the workbench writes a file: into a temporary sibling, flushed to disk (fsync), renamed
 * over the target, then the folder flushed so the rename survives a power loss. A reader sees the old
 * file or the new one, never a part; a failure removes the temporary file and leaves the target as it was.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** What to write: text (UTF-8), bytes, or a function that streams into the open file. */
export type AtomicContent = string | Uint8Array | ((handle: FileHandle) => Promise<void>);

/** A name beside `target` that no reader takes for the target and that no concurrent writer shares. */
export function temporarySibling(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

/** Whether a file name is one of temporarySibling's (a crash mid-write may leave one behind). */
export function isTemporarySibling(name: string): boolean {
  return /^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(name);
}

/** Make a rename durable: fsync the directory that holds it (a no-op where directories cannot be opened). */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | null = null;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch {
    // Windows cannot fsync a directory; the rename itself is still atomic there.
  } finally {
    await handle?.close();
  }
}

/** Write `content` to `target` atomically and durably (see above); the folder must exist. */
export async function writeFileAtomic(target: string, content: AtomicContent): Promise<void> {
  const temporary = temporarySibling(target);
  let handle: FileHandle | null = null;
  try {
    handle = await open(temporary, 'wx');
    if (typeof content === 'function') await content(handle);
    else await handle.writeFile(content);
    await handle.sync();
    await handle.close();
    handle = null;
    await rename(temporary, target);
  } catch (error) {
    if (handle) await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(target));
}
