import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  decodeSafetensors,
  encodeSafetensors,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  readSafetensors,
  readSafetensorsHeader,
  tensorSource,
  writeSafetensors,
  type SafetensorsDtype,
  type TensorSource,
} from '../../../src/engine/io/safetensors';
import { useBackend } from '../../helpers/backend';
import { findPythonWithTorch, runPython } from './python-torch';

const here = path.dirname(fileURLToPath(import.meta.url));
const interopScript = path.join(here, 'safetensors_interop.py');
let dir = '';

beforeAll(async () => {
  await useBackend('cpu');
  dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

/** Build a header by hand the way the spec describes it, independent of our encoder. */
function handBuiltFile(json: string, data: number[]): Uint8Array {
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = [
    ...Array.from({ length: 8 }, (_, i) => (i === 0 ? padded : 0)),
    ...Buffer.from(json.padEnd(padded, ' ')),
    ...data,
  ];
  return Uint8Array.from(bytes);
}

/** Header + data bytes with a header that our encoder would refuse, for the reader's validation. */
function rawFile(header: unknown, dataBytes: number, declaredLength?: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(declaredLength ?? json.length), 0);
  json.copy(out, 8);
  return out;
}

describe('safetensors layout', () => {
  it('writes byte for byte what the spec describes (hand-built buffer)', () => {
    const json =
      '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"ids":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"h":{"dtype":"F16","shape":[1,1],"data_offsets":[11,13]}}';
    expect(json.length % 8).not.toBe(0); // so the padding is exercised
    // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0, then U8 1 2 255, then half(1.0) = 00 3c
    const expected = handBuiltFile(json, [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 1, 2, 255, 0x00, 0x3c]);
    const ours = encodeSafetensors(
      new Map([
        ['w', { dtype: 'F32' as const, shape: [2], values: [1, -2] }],
        ['ids', { dtype: 'U8' as const, shape: [3], values: [1, 2, 255] }],
        ['h', { dtype: 'F16' as const, shape: [1, 1], values: [1] }],
      ]),
      { format: 'pt' },
    );
    expect(Buffer.from(ours).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    expect((ours.length - 13) % 8).toBe(0); // the data section starts 8-byte aligned

    const decoded = decodeSafetensors(expected);
    expect(decoded.metadata).toEqual({ format: 'pt' });
    expect([...decoded.tensors.keys()]).toEqual(['w', 'ids', 'h']);
    expect(Array.from(decoded.tensors.get('w')?.data ?? [])).toEqual([1, -2]);
    expect(decoded.tensors.get('h')).toEqual({ dtype: 'F16', shape: [1, 1], data: new Float32Array([1]) });
  });

  it('writes an empty file and zero-element tensors', () => {
    expect(Buffer.from(encodeSafetensors(new Map())).toString('latin1')).toBe('\x08\0\0\0\0\0\0\0{}      ');
    const bytes = encodeSafetensors(new Map([['e', { dtype: 'F32' as const, shape: [0, 3], values: [] }]]));
    expect(decodeSafetensors(bytes).tensors.get('e')).toEqual({
      dtype: 'F32',
      shape: [0, 3],
      data: new Float32Array(0),
    });
  });

  it('rounds to F16 and BF16 like IEEE round-to-nearest-even', () => {
    const half: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // rounds up to infinity
      [1 + 2 ** -11, 0x3c00], // tie, to even
      [1 + 3 * 2 ** -11, 0x3c02], // tie, to even (up)
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: to even
      [1.5 * 2 ** -25, 0x0001],
      [2 ** -14 - 2 ** -25, 0x0400], // subnormal that rounds up into the normal range
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [-0, 0x8000],
    ];
    for (const [x, bits] of half) expect([x, float32ToFloat16Bits(f32Bits(x))]).toEqual([x, bits]);
    expect(float32ToFloat16Bits(f32Bits(NaN)) & 0x7c00).toBe(0x7c00);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(f32Bits(NaN))))).toBe(true);
    for (const [x] of half) {
      if (Math.abs(x) >= 2 ** -14 && Math.abs(x) <= 65504)
        expect(Math.abs(float16BitsToFloat32(float32ToFloat16Bits(f32Bits(x))) - x)).toBeLessThanOrEqual(
          Math.abs(x) * 2 ** -11,
        );
    }

    expect(float32ToBfloat16Bits(f32Bits(1))).toBe(0x3f80);
    expect(float32ToBfloat16Bits(0x3f808000)).toBe(0x3f80); // tie, to even (down)
    expect(float32ToBfloat16Bits(0x3f818000)).toBe(0x3f82); // tie, to even (up)
    expect(float32ToBfloat16Bits(0x3f808001)).toBe(0x3f81);
    expect(float32ToBfloat16Bits(f32Bits(NaN))).toBe(0x7fc0);
    expect(bfloat16BitsToFloat32(0xc040)).toBe(-3);
  });
});

describe('safetensors files', () => {
  const every: [string, { dtype: SafetensorsDtype; shape: number[]; values: number[] }][] = [
    ['f64', { dtype: 'F64', shape: [3], values: [Math.PI, -1e-300, 1e300] }],
    ['f32', { dtype: 'F32', shape: [2, 3], values: [0, 1.5, -2.25, 3.4e38, 1e-45, -0] }],
    ['f16', { dtype: 'F16', shape: [4], values: [1, 0.1, -65504, 6e-8] }],
    ['bf16', { dtype: 'BF16', shape: [2, 2], values: [1, 0.1, -3, 1e30] }],
    ['i64', { dtype: 'I64', shape: [2], values: [-2147483648, 2147483647] }],
    ['i32', { dtype: 'I32', shape: [3], values: [-7, 0, 123456789] }],
    ['u8', { dtype: 'U8', shape: [2], values: [0, 255] }],
  ];

  it('streams to disk and reads every dtype back', async () => {
    const file = path.join(dir, 'every.safetensors');
    const result = await writeSafetensors(file, every, { note: 'hello' });
    const bytes = await readFile(file);
    expect(result.bytes).toBe(bytes.length);
    const { createHash } = await import('node:crypto');
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(Buffer.from(bytes).equals(Buffer.from(encodeSafetensors(new Map(every), { note: 'hello' })))).toBe(true);

    const read = await readSafetensors(file);
    expect(read.metadata).toEqual({ note: 'hello' });
    for (const [name, { dtype, shape, values }] of every) {
      const record = read.tensors.get(name);
      expect(record?.dtype).toBe(dtype);
      expect(record?.shape).toEqual(shape);
      const expected =
        dtype === 'F16'
          ? values.map((v) => float16BitsToFloat32(float32ToFloat16Bits(f32Bits(v))))
          : dtype === 'BF16'
            ? values.map((v) => bfloat16BitsToFloat32(float32ToBfloat16Bits(f32Bits(v))))
            : dtype === 'F32'
              ? Array.from(new Float32Array(values))
              : values;
      expect(Array.from(record?.data ?? [])).toEqual(expected);
    }
    expect(read.tensors.get('f16')?.data).toBeInstanceOf(Float32Array);
    expect(read.tensors.get('i64')?.data).toBeInstanceOf(Int32Array);

    const header = await readSafetensorsHeader(file);
    expect([...header.entries.keys()]).toEqual(every.map(([name]) => name));
    expect(header.entries.get('f32')?.dataOffsets).toEqual([24, 48]);
  });

  it('writes tf tensors one at a time', async () => {
    const a = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = tf.tensor1d([7, 8], 'int32');
    const file = path.join(dir, 'tf.safetensors');
    await writeSafetensors(
      file,
      new Map([
        ['a', tensorSource(a)],
        ['b', tensorSource(b)],
        ['a16', tensorSource(a, 'BF16')],
      ]),
    );
    const read = await readSafetensors(file);
    expect(read.tensors.get('a')).toEqual({ dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
    expect(read.tensors.get('b')).toEqual({ dtype: 'I32', shape: [2], data: new Int32Array([7, 8]) });
    expect(read.tensors.get('a16')?.data).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    tf.dispose([a, b]);
  });

  it('never leaves a partial file under the final name', async () => {
    const file = path.join(dir, 'atomic.safetensors');
    const failing: [string, TensorSource][] = [
      ['ok', { dtype: 'F32', shape: [1024], values: new Float32Array(1024) }],
      ['boom', { dtype: 'F32', shape: [4], values: () => Promise.reject(new Error('crash while reading the tensor')) }],
    ];
    await expect(writeSafetensors(file, failing)).rejects.toThrow('crash while reading');
    expect((await readdir(dir)).filter((f) => f.includes('atomic'))).toEqual([]);

    await writeSafetensors(file, [['old', { dtype: 'U8', shape: [1], values: [9] }]]);
    await expect(writeSafetensors(file, failing)).rejects.toThrow('crash while reading');
    expect((await readSafetensors(file)).tensors.get('old')?.data).toEqual(new Uint8Array([9]));
    expect((await readdir(dir)).filter((f) => f.includes('atomic'))).toEqual(['atomic.safetensors']);
  });

  it('refuses to write inconsistent tensors', () => {
    expect(() =>
      encodeSafetensors(new Map([['x', { dtype: 'F32' as const, shape: [2, 2], values: [1, 2, 3] }]])),
    ).toThrow('has 3 values but its shape [2, 2] needs 4');
    expect(() => encodeSafetensors(new Map([['x', { dtype: 'U8' as const, shape: [1], values: [256] }]]))).toThrow(
      'does not fit',
    );
    expect(() =>
      encodeSafetensors(new Map([['__metadata__', { dtype: 'U8' as const, shape: [1], values: [1] }]])),
    ).toThrow('cannot name a tensor');
    expect(() =>
      encodeSafetensors(new Map([['x', { dtype: 'F8' as SafetensorsDtype, shape: [1], values: [1] }]])),
    ).toThrow('unknown dtype');
    return expect(
      writeSafetensors(path.join(dir, 'dup.safetensors'), [
        ['x', { dtype: 'U8', shape: [1], values: [1] }],
        ['x', { dtype: 'U8', shape: [1], values: [2] }],
      ]),
    ).rejects.toThrow('duplicate tensor name "x"');
  });
});

describe('safetensors validation', () => {
  const good = encodeSafetensors(
    new Map([
      ['a', { dtype: 'F32' as const, shape: [2], values: [1, 2] }],
      ['b', { dtype: 'F32' as const, shape: [1], values: [3] }],
    ]),
  );
  const entry = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });

  it('reports a truncated file', async () => {
    expect(() => decodeSafetensors(good.subarray(0, 5), 'x.safetensors')).toThrow('x.safetensors: truncated: 5 bytes');
    expect(() => decodeSafetensors(good.subarray(0, good.length - 1), 'x.safetensors')).toThrow(
      'truncated: tensor "b" ends at data byte 12 but the data section has only 11 bytes',
    );
    const file = path.join(dir, 'truncated.safetensors');
    await writeFile(file, good.subarray(0, 30));
    await expect(readSafetensors(file)).rejects.toThrow(
      /header length \d+ goes beyond the end of the file \(30 bytes\)/,
    );
    await expect(readSafetensorsHeader(file)).rejects.toThrow('goes beyond the end of the file');
  });

  it('reports a header length beyond the file, bad JSON and bad metadata', () => {
    expect(() => decodeSafetensors(rawFile({}, 0, 1000))).toThrow('header length 1000 goes beyond the end of the file');
    const notJson = rawFile({}, 0);
    notJson[9] = 0x3a; // '{:'
    expect(() => decodeSafetensors(notJson)).toThrow('header is not valid JSON');
    expect(() => decodeSafetensors(rawFile([1], 0))).toThrow('does not start with "{"');
    expect(() => decodeSafetensors(rawFile({ __metadata__: { n: 1 } }, 0))).toThrow('__metadata__."n" is not a string');
  });

  it('reports overlapping, out-of-range and gapped offsets, and trailing bytes', () => {
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }, 8))).toThrow(
      'tensors "a" and "b" overlap',
    );
    expect(() =>
      decodeSafetensors(rawFile({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [8, 12]) }, 10)),
    ).toThrow('tensor "b" ends at data byte 12 but the data section has only 10 bytes');
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [1], [4, 8]) }, 8))).toThrow(
      'gap in the data section before tensor "a"',
    );
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [1], [0, 4]) }, 6))).toThrow(
      '2 trailing bytes after the last tensor',
    );
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [1], [4, 0]) }, 4))).toThrow(
      'data_offsets [4,0] is not a pair',
    );
  });

  it('reports unknown dtypes, shape/size mismatches and duplicate names', () => {
    expect(() => decodeSafetensors(rawFile({ a: entry('F8_E4M3', [2], [0, 2]) }, 2))).toThrow(
      'tensor "a": unknown dtype "F8_E4M3"',
    );
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [2, 2], [0, 12]) }, 12))).toThrow(
      'tensor "a": shape [2, 2] of F32 needs 16 bytes but data_offsets span 12',
    );
    expect(() => decodeSafetensors(rawFile({ a: entry('F32', [-1], [0, 4]) }, 4))).toThrow(
      'is not a list of non-negative integers',
    );
    const json =
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    const dup = Buffer.alloc(8 + json.length + 2);
    dup.writeBigUInt64LE(BigInt(json.length), 0);
    dup.write(json, 8);
    expect(() => decodeSafetensors(dup)).toThrow('duplicate tensor name "a"');
    // A name that only looks like a duplicate because it also appears nested must pass.
    const nested = '{"__metadata__":{"a":"x"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    const ok = Buffer.alloc(8 + nested.length + 1);
    ok.writeBigUInt64LE(BigInt(nested.length), 0);
    ok.write(nested, 8);
    expect(decodeSafetensors(ok).tensors.get('a')?.data).toEqual(new Uint8Array([0]));
  });

  it('reports I64 values that int32 cannot hold', () => {
    const file = rawFile({ big: entry('I64', [1], [0, 8]) }, 8);
    new DataView(file.buffer, file.byteOffset).setBigInt64(file.length - 8, 2n ** 40n, true);
    expect(() => decodeSafetensors(file)).toThrow('holds 1099511627776 at index 0, beyond the int32 range');
  });
});

describe('safetensors interoperability with PyTorch', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  const implementation =
    python.safetensors && !process.env.MIMIR_SAFETENSORS_BY_HAND ? 'the safetensors package' : 'by hand from the spec';
  console.log(
    `[safetensors] cross-checking with ${python.executable}: torch ${python.torch}, Python side ${implementation}`,
  );
  const spec = {
    metadata: { format: 'pt', producer: 'mimir' },
    tensors: {
      'blocks.0.attn.qkv.weight': { dtype: 'F32', shape: [3, 2], values: [0.5, -1.25, 3e-8, 7, 1e-45, 1e20] },
      cls_token: { dtype: 'F64', shape: [1, 1, 2], values: [Math.E, -1 / 3] },
      half: {
        dtype: 'F16',
        shape: [6],
        values: [1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, 65519, 2 ** -25, 1.5 * 2 ** -25],
      },
      brain: { dtype: 'BF16', shape: [2, 2], values: [0.1, -1e30, 1 + 2 ** -8, 1 + 3 * 2 ** -8] },
      index: { dtype: 'I64', shape: [3], values: [-5, 0, 2147483647] },
      count: { dtype: 'I32', shape: [1], values: [-123] },
      mask: { dtype: 'U8', shape: [2, 1], values: [0, 200] },
      empty: { dtype: 'F32', shape: [0], values: [] },
    },
  };
  const sources = Object.entries(spec.tensors).map(
    ([name, t]) => [name, { dtype: t.dtype as SafetensorsDtype, shape: t.shape, values: t.values }] as const,
  );

  it('PyTorch reads what we write, bit for bit', async () => {
    const file = path.join(dir, 'ours.safetensors');
    const specFile = path.join(dir, 'spec.json');
    await writeFile(specFile, JSON.stringify(spec));
    await writeSafetensors(file, sources, spec.metadata);
    const report = runPython(python, [interopScript, 'read', file, specFile]);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, count: sources.length });
  });

  it('we read what PyTorch writes, and write the same bytes for the same order', async () => {
    const file = path.join(dir, 'theirs.safetensors');
    const specFile = path.join(dir, 'spec-one-metadata.json');
    const oneKey = { ...spec, metadata: { format: 'pt' } }; // one key: a HashMap's order is not defined
    await writeFile(specFile, JSON.stringify(oneKey));
    expect(runPython(python, [interopScript, 'write', file, specFile]).ok).toBe(true);

    const bytes = await readFile(file);
    const theirs = decodeSafetensors(bytes, file);
    expect(theirs.metadata).toEqual({ format: 'pt' });
    for (const [name, source] of sources) {
      const record = theirs.tensors.get(name);
      expect(record?.dtype).toBe(source.dtype);
      expect(record?.shape).toEqual(source.shape);
      const ours = decodeSafetensors(encodeSafetensors(new Map([[name, source]]))).tensors.get(name);
      expect([name, Array.from(record?.data ?? [])]).toEqual([name, Array.from(ours?.data ?? [])]);
    }
    // Lay our file out in their order (they sort by dtype, then name; the header lists tensors in
    // data order) and compare every byte.
    const theirOrder = [...(await readSafetensorsHeader(file)).entries.keys()];
    const sourceByName = new Map(sources);
    const ourBytes = encodeSafetensors(
      new Map(
        theirOrder.map((name) => [name, sourceByName.get(name) ?? { dtype: 'U8' as const, shape: [0], values: [] }]),
      ),
      { format: 'pt' },
    );
    expect(Buffer.from(ourBytes).toString('hex')).toBe(bytes.toString('hex'));
  });
});
