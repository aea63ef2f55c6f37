import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { DatasetError } from './dataset';
import { errorMessage } from '@shared/unknown-value';

const BLOCK = 512;

/** One regular file of a tar archive. */
export interface TarEntry {
  /** The path inside the archive, with ustar prefix, GNU long name or pax path applied. */
  name: string;
  size: number;
}

function readString(block: Uint8Array, start: number, length: number): string {
  const bytes = block.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return Buffer.from(end === -1 ? bytes : bytes.subarray(0, end)).toString('utf8');
}

function readOctal(block: Uint8Array, start: number, length: number): number {
  // GNU base-256 for sizes past 8 GiB: high bit of the first byte set.
  if (((block[start] as number) & 0x80) !== 0) {
    let value = (block[start] as number) & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + (block[i] as number);
    return value;
  }
  const text = readString(block, start, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(block: Uint8Array): boolean {
  const stored = readOctal(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (block[i] as number);
  return sum === stored;
}

function paxPath(data: Buffer): string | null {
  // Records are "<length> <key>=<value>\n".
  let offset = 0;
  let path: string | null = null;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = parseInt(data.subarray(offset, space).toString('utf8'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq !== -1 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    offset += length;
  }
  return path;
}

/**
 * Reads the regular files of a .tar.gz (or plain .tar) in one streaming pass and keeps the content
 * of those that `want` accepts; the rest of the archive is skipped, not held in memory. Handles
 * ustar prefixes, GNU long names and pax path records. Errors name the archive.
 */
export async function readTarFiles(
  archivePath: string,
  want: (entry: TarEntry) => boolean,
): Promise<Map<string, Buffer>> {
  const gzip = archivePath.toLowerCase().endsWith('.gz') || archivePath.toLowerCase().endsWith('.tgz');
  const source = createReadStream(archivePath);
  const stream = gzip ? source.pipe(createGunzip()) : source;
  source.on('error', (error) => stream.destroy(error));

  const files = new Map<string, Buffer>();
  let header: Buffer | null = null; // partial 512-byte header being assembled
  let headerFill = 0;
  let entry: { name: string; size: number; type: string; keep: Buffer | null; filled: number; padding: number } | null =
    null;
  let longName: string | null = null;
  let ended = false;
  let skip = 0; // bytes of padding still to pass after an entry's data

  const fail = (message: string, cause?: unknown) =>
    new DatasetError('corrupt', `${archivePath} is not a readable tar archive: ${message}`, archivePath, { cause });

  const startEntry = (block: Buffer) => {
    if (block.every((b) => b === 0)) {
      ended = true;
      return;
    }
    if (!checksumOk(block)) throw fail('a header checksum does not match (corrupt or not a tar file)');
    const type = String.fromCharCode(block[156] || 0x30);
    const prefix = readString(block, 345, 155);
    const baseName = readString(block, 0, 100);
    let name = prefix && block.subarray(257, 262).toString('latin1') === 'ustar' ? `${prefix}/${baseName}` : baseName;
    if (longName !== null && type !== 'L' && type !== 'x') {
      name = longName;
      longName = null;
    }
    const size = readOctal(block, 124, 12);
    const isFile = type === '0' || type === '7';
    const metadata = type === 'L' || type === 'x';
    const keep = metadata || (isFile && want({ name, size })) ? Buffer.alloc(size) : null;
    entry = { name, size, type, keep, filled: 0, padding: (BLOCK - (size % BLOCK)) % BLOCK };
    if (size === 0) finishEntry();
  };

  const finishEntry = () => {
    if (!entry) return;
    if (entry.type === 'L' && entry.keep) longName = readString(entry.keep, 0, entry.keep.length);
    else if (entry.type === 'x' && entry.keep) longName = paxPath(entry.keep) ?? longName;
    else if (entry.keep) files.set(entry.name, entry.keep);
    const padding = entry.padding;
    entry = null;
    skip = padding;
  };

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length && !ended) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - offset);
          skip -= n;
          offset += n;
        } else if (entry) {
          const current: { size: number; keep: Buffer | null; filled: number } = entry;
          const n = Math.min(current.size - current.filled, chunk.length - offset);
          if (current.keep) chunk.copy(current.keep, current.filled, offset, offset + n);
          current.filled += n;
          offset += n;
          if (current.filled === current.size) finishEntry();
        } else {
          header ??= Buffer.alloc(BLOCK);
          const n = Math.min(BLOCK - headerFill, chunk.length - offset);
          chunk.copy(header, headerFill, offset, offset + n);
          headerFill += n;
          offset += n;
          if (headerFill === BLOCK) {
            headerFill = 0;
            startEntry(header);
            header = null;
          }
        }
      }
      if (ended) break;
    }
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new DatasetError('missing', `${archivePath} does not exist.`, archivePath, { cause: error });
    }
    throw fail(errorMessage(error), error);
  } finally {
    stream.destroy();
    source.destroy();
  }
  const open = entry as { name: string; size: number; filled: number } | null;
  if (open) throw fail(`it ends inside ${open.name} (${open.filled} of ${open.size} bytes): the file is truncated`);
  if (!ended && headerFill > 0) throw fail('it ends inside a header: the file is truncated');
  return files;
}
