/**
 * NumPy .npz archives (np.savez, np.savez_compressed): a zip of .npy files, one per array, named
 * `<key>.npy`. Entries stored or deflated are read, zip64 size fields included; the arrays
 * themselves are decoded by the caller (npy.ts), so a .npz holds whatever a .npy may.
 */
import { inflateRawSync } from 'node:zlib';

export class NpzFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NpzFormatError';
  }
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const MAX32 = 0xffffffff;

/** The raw .npy bytes of every array in the archive, by key (the entry name without `.npy`). */
export function decodeNpz(bytes: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = findEndOfCentralDirectory(view);
  const entries = view.getUint16(eocd + 10, true);
  const directoryOffset = view.getUint32(eocd + 16, true);
  if (entries === 0xffff || directoryOffset === MAX32) {
    throw new NpzFormatError('a zip64 archive (over 4 GiB or 65,535 arrays) is not supported; split the data.');
  }
  const arrays = new Map<string, Uint8Array>();
  let at = directoryOffset;
  for (let i = 0; i < entries; i++) {
    if (at + 46 > view.byteLength || view.getUint32(at, true) !== CENTRAL) {
      throw new NpzFormatError('the zip directory is damaged (no entry where one should be).');
    }
    const method = view.getUint16(at + 10, true);
    let compressed = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // Zip64: each 0xffffffff field is given, in order, in the extra field's 8-byte values.
    const wide = zip64Values(view, at + 46 + nameLength, extraLength);
    if (size === MAX32) size = wide.shift() ?? size;
    if (compressed === MAX32) compressed = wide.shift() ?? compressed;
    if (local === MAX32) local = wide.shift() ?? local;
    at += 46 + nameLength + extraLength + commentLength;

    if (view.getUint32(local, true) !== LOCAL) throw new NpzFormatError(`the entry ${name} is damaged.`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + compressed > bytes.length)
      throw new NpzFormatError(`the entry ${name} is cut short: the file is truncated.`);
    const stored = bytes.subarray(start, start + compressed);
    let data: Uint8Array;
    if (method === 0) data = stored;
    else if (method === 8) data = inflateRawSync(stored);
    else
      throw new NpzFormatError(
        `the entry ${name} uses zip compression method ${method}; only stored and deflate are read.`,
      );
    if (data.length !== size)
      throw new NpzFormatError(`the entry ${name} holds ${data.length} bytes, its header says ${size}.`);
    arrays.set(name.replace(/\.npy$/, ''), data);
  }
  return arrays;
}

function findEndOfCentralDirectory(view: DataView): number {
  // The record is 22 bytes plus a comment of at most 65,535 bytes, at the end of the file.
  for (let at = view.byteLength - 22; at >= Math.max(0, view.byteLength - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) === EOCD) return at;
  }
  throw new NpzFormatError('not a .npz file (no zip directory): save it with numpy.savez or numpy.savez_compressed.');
}

function zip64Values(view: DataView, start: number, length: number): number[] {
  for (let at = start; at + 4 <= start + length;) {
    const id = view.getUint16(at, true);
    const size = view.getUint16(at + 2, true);
    if (id === ZIP64_EXTRA) {
      const values: number[] = [];
      for (let v = at + 4; v + 8 <= at + 4 + size; v += 8) values.push(Number(view.getBigUint64(v, true)));
      return values;
    }
    at += 4 + size;
  }
  return [];
}
