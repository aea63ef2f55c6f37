/**
 * NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian float32 / float64 / int32 /
 * uint8 arrays in C order, read and written. Anything else (Fortran order, big-endian data, other
 * dtypes, a short file) is refused with a message that says what was found.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file';

export type NpyArray =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'float64'; shape: number[]; data: Float64Array }
  | { dtype: 'int32'; shape: number[]; data: Int32Array }
  | { dtype: 'uint8'; shape: number[]; data: Uint8Array };
export type NpyDtype = NpyArray['dtype'];

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR: Record<NpyDtype, string> = { float32: '<f4', float64: '<f8', int32: '<i4', uint8: '|u1' };
const ITEM_SIZE: Record<NpyDtype, number> = { float32: 4, float64: 8, int32: 4, uint8: 1 };

export class NpyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NpyFormatError';
  }
}

function dtypeOf(descr: string): NpyDtype {
  const known: Record<string, NpyDtype> = {
    '<f4': 'float32',
    '<f8': 'float64',
    '<i4': 'int32',
    '|u1': 'uint8',
    '<u1': 'uint8',
  };
  const dtype = known[descr];
  if (dtype) return dtype;
  if (descr.startsWith('>') && ['f4', 'f8', 'i4'].includes(descr.slice(1))) {
    throw new NpyFormatError(
      `big-endian data (dtype '${descr}') is not supported; save it little-endian (arr.astype('<${descr.slice(1)}')).`,
    );
  }
  throw new NpyFormatError(
    `unsupported dtype '${descr}'; supported: float32 (<f4), float64 (<f8), int32 (<i4), uint8 (|u1).`,
  );
}

/** The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. */
function parseHeader(header: string): { descr: string; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) {
    if (/'descr'\s*:\s*\[/.test(header)) throw new NpyFormatError('structured dtypes are not supported.');
    throw new NpyFormatError(`malformed header: ${header.trim()}`);
  }
  if (fortran[1] === 'True') {
    throw new NpyFormatError('Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray).');
  }
  const dims = (shape[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const dim = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(dim) || dim < 0) throw new NpyFormatError(`malformed shape (${shape[1]}).`);
      return dim;
    });
  return { descr: descr[1] ?? '', shape: dims };
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function typedData(dtype: NpyDtype, bytes: Uint8Array, count: number): NpyArray['data'] {
  // Copy into a fresh buffer: the file's bytes need not be aligned for a typed-array view (and
  // Buffer#slice would not copy).
  const own = new Uint8Array(count * ITEM_SIZE[dtype]);
  own.set(bytes.subarray(0, own.length));
  if (dtype === 'uint8') return own;
  if (hostIsLittleEndian) {
    if (dtype === 'float32') return new Float32Array(own.buffer, 0, count);
    if (dtype === 'float64') return new Float64Array(own.buffer, 0, count);
    return new Int32Array(own.buffer, 0, count);
  }
  const view = new DataView(own.buffer);
  if (dtype === 'float32') return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
  if (dtype === 'float64') return Float64Array.from({ length: count }, (_, i) => view.getFloat64(8 * i, true));
  return Int32Array.from({ length: count }, (_, i) => view.getInt32(4 * i, true));
}

/**
 * Integer labels from the bytes of a .npy file of any common integer dtype (NumPy's default int64
 * included, as EDM's generated-data archives store them), as int32; a value outside int32 is refused.
 */
export function decodeNpyIntegers(bytes: Uint8Array): { shape: number[]; data: Int32Array } {
  const { descr, shape, data } = npyLayout(bytes);
  const count = shape.reduce((p, d) => p * d, 1);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const readers: Record<string, [number, (offset: number) => number]> = {
    '<i8': [8, (o) => Number(view.getBigInt64(o, true))],
    '<u8': [8, (o) => Number(view.getBigUint64(o, true))],
    '<i4': [4, (o) => view.getInt32(o, true)],
    '<u4': [4, (o) => view.getUint32(o, true)],
    '<i2': [2, (o) => view.getInt16(o, true)],
    '<u2': [2, (o) => view.getUint16(o, true)],
    '|i1': [1, (o) => view.getInt8(o)],
    '|u1': [1, (o) => view.getUint8(o)],
    '<u1': [1, (o) => view.getUint8(o)],
  };
  const reader = readers[descr];
  if (!reader)
    throw new NpyFormatError(`dtype '${descr}' is not an integer type (labels need int64, int32, ... or uint8).`);
  const [size, read] = reader;
  if (data.length !== count * size) {
    throw new NpyFormatError(
      `shape (${shape.join(', ')}) of '${descr}' needs ${count * size} bytes, the file has ${data.length}.`,
    );
  }
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const value = read(i * size);
    if (value < -0x80000000 || value > 0x7fffffff)
      throw new NpyFormatError(`value ${value} at ${i} does not fit in int32.`);
    out[i] = value;
  }
  return { shape, data: out };
}

/** The header's dtype descriptor and shape, and the data bytes, of a .npy file (any dtype). */
function npyLayout(bytes: Uint8Array): { descr: string; shape: number[]; data: Uint8Array } {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw new NpyFormatError('not a .npy file (no \\x93NUMPY magic).');
  const major = bytes[6] ?? 0;
  const minor = bytes[7] ?? 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyFormatError('truncated header.');
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new NpyFormatError(`unsupported format version ${major}.${minor} (supported: 1.0, 2.0, 3.0).`);
  }
  const dataStart = headerStart + headerLength;
  if (bytes.length < dataStart)
    throw new NpyFormatError(`truncated header: needs ${dataStart} bytes, the file has ${bytes.length}.`);
  const headerBytes = bytes.subarray(headerStart, dataStart);
  // Version 3.0 allows UTF-8 in the header; 1.0 and 2.0 are latin-1.
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(headerBytes);
  const { descr, shape } = parseHeader(header);
  return { descr, shape, data: bytes.subarray(dataStart) };
}

/** Parse the bytes of a .npy file. */
export function decodeNpy(bytes: Uint8Array): NpyArray {
  const layout = npyLayout(bytes);
  const { shape } = layout;
  const dtype = dtypeOf(layout.descr);

  const count = shape.reduce((p, d) => p * d, 1);
  const needed = count * ITEM_SIZE[dtype];
  const available = layout.data.length;
  if (available < needed) {
    throw new NpyFormatError(
      `truncated data: shape (${shape.join(', ')}) of ${dtype} needs ${needed} bytes, the file has ${available}.`,
    );
  }
  if (available > needed) {
    throw new NpyFormatError(
      `${available - needed} bytes after the data of shape (${shape.join(', ')}) ${dtype}; the file is not a plain .npy array.`,
    );
  }
  const data = typedData(dtype, layout.data, count);
  return { dtype, shape, data } as NpyArray;
}

/** The bytes of a .npy file for `array` (format 1.0, or 2.0 when the header needs it). */
export function encodeNpy(array: NpyArray): Uint8Array {
  const count = array.shape.reduce((p, d) => p * d, 1);
  if (array.shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new NpyFormatError(`invalid shape (${array.shape.join(', ')}).`);
  if (array.data.length !== count) {
    throw new NpyFormatError(
      `shape (${array.shape.join(', ')}) holds ${count} values but the data has ${array.data.length}.`,
    );
  }
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[array.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  // The header (with its prefix) is padded with spaces and a newline to a multiple of 64 bytes.
  const pad = (prefix: number): string => {
    const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
    return dict + ' '.repeat(total - prefix - dict.length - 1) + '\n';
  };
  let version = 1;
  let header = pad(10);
  if (header.length > 0xffff) {
    version = 2;
    header = pad(12);
  }
  const prefix = version === 1 ? 10 : 12;
  const itemSize = ITEM_SIZE[array.dtype];
  const out = new Uint8Array(prefix + header.length + count * itemSize);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  const dataStart = prefix + header.length;
  if (hostIsLittleEndian || array.dtype === 'uint8') {
    out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, count * itemSize), dataStart);
  } else {
    for (let i = 0; i < count; i++) {
      const v = array.data[i] as number;
      if (array.dtype === 'float32') view.setFloat32(dataStart + 4 * i, v, true);
      else if (array.dtype === 'float64') view.setFloat64(dataStart + 8 * i, v, true);
      else view.setInt32(dataStart + 4 * i, v, true);
    }
  }
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  const bytes = await readFile(path);
  try {
    return decodeNpy(bytes);
  } catch (error) {
    if (error instanceof NpyFormatError) throw new NpyFormatError(`${path}: ${error.message}`);
    throw error;
  }
}

export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  await writeFileAtomic(path, encodeNpy(array));
}
