import { errorMessage, isRecord } from '@shared/unknown-value';
/**
 * The safetensors file format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{"__metadata__": {string: string}, "<name>": {"dtype", "shape", "data_offsets"}}`
 * padded with spaces so the data starts 8-byte aligned, then the tensors' little-endian bytes,
 * contiguous, with offsets relative to the start of the data section.
 *
 * Writing streams one tensor at a time into a temporary file that is renamed into place, so a crash
 * mid-write never leaves a partial file under the final name. Reading validates the layout as strictly
 * as the reference implementation does (no gaps, no overlaps, nothing past the end, no trailing bytes).
 */
import { createHash } from 'node:crypto';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from './atomic-file';

export const SAFETENSORS_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'U8'] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1 };
/** The reference implementation refuses headers above 100 MB; so do we, before allocating them. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** What to write for one tensor: its dtype in the file, its shape, and its values (read lazily when streaming). */
export interface TensorSource {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  values: ArrayLike<number> | (() => Promise<ArrayLike<number>>);
}

/**
 * A tensor as read: F16 and BF16 widen to Float32Array, F64 stays Float64Array, I64 narrows to
 * Int32Array (TensorFlow.js has no int64; a value outside the int32 range is an error), `dtype`
 * says what the file held.
 */
export interface TensorRecord {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
}

export interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range [begin, end) relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In the order of the header's JSON. */
  entries: Map<string, HeaderEntry>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, TensorRecord>;
}

export interface WriteResult {
  bytes: number;
  sha256: string;
}

/** Write a tf.Tensor as float32 (default), or convert on the way (F16/BF16 for a compact export). */
export function tensorSource(tensor: tf.Tensor, dtype?: SafetensorsDtype): TensorSource {
  const fileDtype = dtype ?? defaultDtypeOf(tensor);
  return { dtype: fileDtype, shape: tensor.shape, values: async () => (await tensor.data()) as ArrayLike<number> };
}

function defaultDtypeOf(tensor: tf.Tensor): SafetensorsDtype {
  switch (tensor.dtype) {
    case 'float32':
      return 'F32';
    case 'int32':
      return 'I32';
    case 'bool':
      return 'U8';
    default:
      throw new SafetensorsError(`cannot write a ${tensor.dtype} tensor to safetensors`);
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function checkShape(name: string, shape: readonly number[]): void {
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(`tensor "${name}" has an invalid shape [${shape.join(', ')}]`);
    }
  }
}

/** The header bytes (JSON padded with spaces to a multiple of 8) for tensors laid out in the given order. */
export function encodeHeader(
  tensors: Iterable<readonly [string, { dtype: SafetensorsDtype; shape: readonly number[] }]>,
  metadata: Record<string, string> = {},
): { header: Uint8Array; dataBytes: number } {
  const parts: string[] = [];
  const metadataKeys = Object.keys(metadata);
  if (metadataKeys.length > 0) {
    for (const key of metadataKeys) {
      if (typeof metadata[key] !== 'string') throw new SafetensorsError(`metadata "${key}" is not a string`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const [name, { dtype, shape }] of tensors) {
    if (name === METADATA_KEY) throw new SafetensorsError(`"${METADATA_KEY}" cannot name a tensor`);
    if (seen.has(name)) throw new SafetensorsError(`duplicate tensor name "${name}"`);
    seen.add(name);
    if (!(SAFETENSORS_DTYPES as readonly string[]).includes(dtype))
      throw new SafetensorsError(`tensor "${name}": unknown dtype "${dtype}"`);
    checkShape(name, shape);
    const end = offset + elementCount(shape) * BYTES_PER_ELEMENT[dtype];
    parts.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify([...shape])},"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header, dataBytes: offset };
}

/** The little-endian bytes of `values` as `dtype`. F16/BF16 round to nearest even, like PyTorch. */
export function encodeValues(name: string, dtype: SafetensorsDtype, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32': {
      if (values instanceof Float32Array && LITTLE_ENDIAN_HOST)
        return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      return typedBytes(Float32Array.from(values), (view, i, v) => view.setFloat32(i * 4, v, true));
    }
    case 'F64': {
      if (values instanceof Float64Array && LITTLE_ENDIAN_HOST)
        return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      return typedBytes(Float64Array.from(values), (view, i, v) => view.setFloat64(i * 8, v, true));
    }
    case 'I32': {
      checkIntegers(name, values, -2147483648, 2147483647);
      if (values instanceof Int32Array && LITTLE_ENDIAN_HOST)
        return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      return typedBytes(Int32Array.from(values), (view, i, v) => view.setInt32(i * 4, v, true));
    }
    case 'U8': {
      checkIntegers(name, values, 0, 255);
      return Uint8Array.from(values);
    }
    case 'I64': {
      checkIntegers(name, values, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const out = new Uint8Array(n * 8);
      const view = new DataView(out.buffer);
      for (let i = 0; i < n; i++) view.setBigInt64(i * 8, BigInt(values[i]), true);
      return out;
    }
    case 'F16':
    case 'BF16': {
      const convert = dtype === 'F16' ? float32ToFloat16Bits : float32ToBfloat16Bits;
      const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
      const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
      const out = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) {
        const h = convert(bits[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    }
  }
}

/** Copy of the typed array's bytes on a little-endian host; a DataView rewrite otherwise. */
function typedBytes<T extends Float32Array | Float64Array | Int32Array>(
  array: T,
  set: (view: DataView, i: number, v: number) => void,
): Uint8Array {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < array.length; i++) set(view, i, array[i]);
  return bytes;
}

function checkIntegers(name: string, values: ArrayLike<number>, min: number, max: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new SafetensorsError(`tensor "${name}": value ${v} at index ${i} does not fit its integer dtype`);
    }
  }
}

/** float32 bits -> bfloat16 bits, round to nearest even; NaN becomes 0x7fc0 as in PyTorch. */
export function float32ToBfloat16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits -> IEEE half bits, round to nearest even, with subnormals, overflow to infinity and NaN. */
export function float32ToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // below half the smallest subnormal: rounds to zero
    const full = mantissa | 0x800000; // implicit leading one
    const shift = 14 - halfExponent; // 14..24
    const truncated = full >>> shift;
    const remainder = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const rounded = remainder > halfway || (remainder === halfway && (truncated & 1) === 1) ? truncated + 1 : truncated;
    return sign | rounded;
  }
  const truncated = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  const rounded = remainder > 0x1000 || (remainder === 0x1000 && (truncated & 1) === 1) ? truncated + 1 : truncated;
  return sign | rounded;
}

const conversionView = new DataView(new ArrayBuffer(4));

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function bfloat16BitsToFloat32(h: number): number {
  conversionView.setUint32(0, (h & 0xffff) << 16);
  return conversionView.getFloat32(0);
}

/** Encode a whole file in memory (small files, tests). `writeSafetensors` streams instead. */
export function encodeSafetensors(
  tensors: Map<string, { dtype: SafetensorsDtype; shape: readonly number[]; values: ArrayLike<number> }>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const { header, dataBytes } = encodeHeader(tensors, metadata);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header, 0);
  let offset = header.length;
  for (const [name, { dtype, shape, values }] of tensors) {
    checkValueCount(name, shape, values);
    const bytes = encodeValues(name, dtype, values);
    out.set(bytes, offset);
    offset += bytes.length;
  }
  return out;
}

function checkValueCount(name: string, shape: readonly number[], values: ArrayLike<number>): void {
  const expected = elementCount(shape);
  if (values.length !== expected) {
    throw new SafetensorsError(
      `tensor "${name}" has ${values.length} values but its shape [${shape.join(', ')}] needs ${expected}`,
    );
  }
}

/**
 * Stream tensors into a safetensors file: header first, then each tensor's bytes in the order
 * given, reading one tensor's values at a time. Written to a temporary sibling, flushed to disk and
 * renamed into place. Returns the file's size and sha256.
 */
export async function writeSafetensors(
  filePath: string,
  tensors: Map<string, TensorSource> | Iterable<readonly [string, TensorSource]>,
  metadata: Record<string, string> = {},
): Promise<WriteResult> {
  const entries = [...tensors];
  const { header, dataBytes } = encodeHeader(entries, metadata);
  const hash = createHash('sha256');
  await writeFileAtomic(filePath, async (handle) => {
    await writeAll(handle, header, hash);
    let written = 0;
    for (const [name, source] of entries) {
      const values = typeof source.values === 'function' ? await source.values() : source.values;
      checkValueCount(name, source.shape, values);
      const bytes = encodeValues(name, source.dtype, values);
      await writeAll(handle, bytes, hash);
      written += bytes.length;
    }
    if (written !== dataBytes)
      throw new SafetensorsError(`internal: wrote ${written} data bytes, header promised ${dataBytes}`);
  });
  return { bytes: header.length + dataBytes, sha256: hash.digest('hex') };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, hash: ReturnType<typeof createHash>): Promise<void> {
  hash.update(bytes);
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/** Parse and validate the header of a file of `fileBytes` bytes whose first bytes are `prefix`. */
export function decodeHeader(prefix: Uint8Array, fileBytes: number, source: string): SafetensorsHeader {
  const fail: (message: string) => never = (message) => {
    throw new SafetensorsError(`${source}: ${message}`);
  };
  if (fileBytes < 8) fail(`truncated: ${fileBytes} bytes, fewer than the 8-byte header length`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(fileBytes - 8))
    fail(`header length ${declared} goes beyond the end of the file (${fileBytes} bytes)`);
  const headerBytes = Number(declared);
  if (headerBytes > MAX_HEADER_BYTES) fail(`header length ${headerBytes} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (prefix.length < 8 + headerBytes)
    fail(`internal: only ${prefix.length} bytes given for a ${headerBytes}-byte header`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + headerBytes));
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('header does not start with "{"');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail(`header is not valid JSON (${errorMessage(error)})`);
  }
  if (!isRecord(parsed)) return fail('header is not a JSON object');
  const duplicate = firstDuplicateTopLevelKey(text);
  if (duplicate !== null) fail(`duplicate tensor name "${duplicate}" in the header`);

  const metadata: Record<string, string> = {};
  const entries = new Map<string, HeaderEntry>();
  for (const [name, value] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (!isRecord(value)) fail(`${METADATA_KEY} is not an object`);
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') fail(`${METADATA_KEY}."${key}" is not a string`);
        metadata[key] = item as string;
      }
      continue;
    }
    if (!isRecord(value)) return fail(`tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string' || !(SAFETENSORS_DTYPES as readonly string[]).includes(dtype)) {
      fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a pair [begin, end] with begin <= end`);
    }
    const entry: HeaderEntry = {
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      dataOffsets: [offsets[0] as number, offsets[1] as number],
    };
    const expectedBytes = elementCount(entry.shape) * BYTES_PER_ELEMENT[entry.dtype];
    const actualBytes = entry.dataOffsets[1] - entry.dataOffsets[0];
    if (actualBytes !== expectedBytes) {
      fail(
        `tensor "${name}": shape [${entry.shape.join(', ')}] of ${entry.dtype} needs ${expectedBytes} bytes but data_offsets span ${actualBytes}`,
      );
    }
    entries.set(name, entry);
  }

  const dataBytes = fileBytes - 8 - headerBytes;
  const byOffset = [...entries].sort(
    (a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1],
  );
  let previousEnd = 0;
  let previousName: string | null = null;
  for (const [name, entry] of byOffset) {
    const [begin, end] = entry.dataOffsets;
    if (begin < previousEnd) fail(`tensors "${previousName}" and "${name}" overlap (byte ${begin} < ${previousEnd})`);
    if (begin > previousEnd)
      fail(`gap in the data section before tensor "${name}" (bytes ${previousEnd}..${begin} belong to no tensor)`);
    if (end > dataBytes)
      fail(`truncated: tensor "${name}" ends at data byte ${end} but the data section has only ${dataBytes} bytes`);
    previousEnd = end;
    previousName = name;
  }
  if (previousEnd !== dataBytes) fail(`${dataBytes - previousEnd} trailing bytes after the last tensor`);
  return { metadata, entries, dataStart: 8 + headerBytes };
}

/**
 * JSON.parse keeps the last of duplicate keys silently; the format forbids duplicates, so scan the
 * (already valid) JSON text for the keys of its top-level object.
 */
function firstDuplicateTopLevelKey(text: string): string | null {
  const keys = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return null;
}

/** Decode one tensor's bytes (copied, so the result does not pin the file buffer). */
export function decodeValues(
  name: string,
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  source: string,
): TensorRecord['data'] {
  const copy = new Uint8Array(bytes); // a copy even when `bytes` is a Buffer, whose slice() is a view
  const view = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
  const n = copy.length / BYTES_PER_ELEMENT[dtype];
  switch (dtype) {
    case 'U8':
      return copy;
    case 'F32': {
      if (LITTLE_ENDIAN_HOST) return new Float32Array(copy.buffer, 0, n);
      return Float32Array.from({ length: n }, (_, i) => view.getFloat32(i * 4, true));
    }
    case 'F64': {
      if (LITTLE_ENDIAN_HOST) return new Float64Array(copy.buffer, 0, n);
      return Float64Array.from({ length: n }, (_, i) => view.getFloat64(i * 8, true));
    }
    case 'I32': {
      if (LITTLE_ENDIAN_HOST) return new Int32Array(copy.buffer, 0, n);
      return Int32Array.from({ length: n }, (_, i) => view.getInt32(i * 4, true));
    }
    case 'I64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = view.getBigInt64(i * 8, true);
        if (v < -2147483648n || v > 2147483647n) {
          throw new SafetensorsError(
            `${source}: I64 tensor "${name}" holds ${v} at index ${i}, beyond the int32 range TensorFlow.js can hold`,
          );
        }
        out[i] = Number(v);
      }
      return out;
    }
    case 'F16':
    case 'BF16': {
      const widen = dtype === 'F16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = widen(view.getUint16(i * 2, true));
      return out;
    }
  }
}

/** Parse and validate a whole safetensors file held in memory. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const header = decodeHeader(bytes, bytes.length, source);
  const tensors = new Map<string, TensorRecord>();
  for (const [name, entry] of header.entries) {
    const begin = header.dataStart + entry.dataOffsets[0];
    const end = header.dataStart + entry.dataOffsets[1];
    tensors.set(name, {
      dtype: entry.dtype,
      shape: entry.shape,
      data: decodeValues(name, entry.dtype, bytes.subarray(begin, end), source),
    });
  }
  return { metadata: header.metadata, tensors };
}

export async function readSafetensors(filePath: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFile(filePath), filePath);
}

/** Read and validate only the header (names, dtypes, shapes, metadata) without loading the data. */
export async function readSafetensorsHeader(filePath: string): Promise<SafetensorsHeader> {
  const handle = await open(filePath, 'r');
  try {
    const { size } = await handle.stat();
    const lengthBytes = new Uint8Array(8);
    const { bytesRead } = await handle.read(lengthBytes, 0, Math.min(8, size), 0);
    if (bytesRead < 8) return decodeHeader(lengthBytes.subarray(0, bytesRead), size, filePath);
    const declared = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (declared > BigInt(size - 8) || declared > BigInt(MAX_HEADER_BYTES))
      return decodeHeader(lengthBytes, size, filePath);
    const prefix = new Uint8Array(8 + Number(declared));
    prefix.set(lengthBytes, 0);
    await handle.read(prefix, 8, prefix.length - 8, 8);
    return decodeHeader(prefix, size, filePath);
  } finally {
    await handle.close();
  }
}
