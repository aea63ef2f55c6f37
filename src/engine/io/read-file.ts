import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Why a file could not be read, said so that the user can act on it. */
export class FileReadError extends Error {
  constructor(
    message: string,
    readonly code: 'not-found' | 'invalid-input',
  ) {
    super(message);
    this.name = 'FileReadError';
  }
}

function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a folder';
  if (info.isFIFO()) return 'a named pipe';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * A regular file's bytes, at most `maxBytes`, read asynchronously. A named pipe, a device, a socket
 * or a folder is refused without waiting on it: the file is opened non-blocking (a pipe with no
 * writer would otherwise hold the open forever) and checked on the open handle, so it cannot be
 * swapped between the check and the read.
 */
export async function readRegularFile(file: string, maxBytes: number): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FileReadError(`${file} does not exist.`, 'not-found');
    throw new FileReadError(`${file} cannot be opened: ${(error as Error).message}`, 'invalid-input');
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new FileReadError(`${file} is ${kindOf(info)}; only regular files are read.`, 'invalid-input');
    }
    if (info.size > maxBytes) {
      throw new FileReadError(`${file} is ${info.size} bytes, over the ${maxBytes}-byte limit.`, 'invalid-input');
    }
    const bytes = Buffer.alloc(info.size);
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesRead } = await handle.read(bytes, offset, bytes.length - offset, offset);
      if (bytesRead === 0) break; // truncated meanwhile: what is there
      offset += bytesRead;
    }
    return bytes.subarray(0, offset);
  } finally {
    await handle.close();
  }
}
