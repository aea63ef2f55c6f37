import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NpyFormatError, decodeNpy, encodeNpy, readNpy, writeNpy, type NpyArray } from '../../../src/engine/io/npy';

const dir = mkdtempSync(path.join(tmpdir(), 'mimir-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A .npy file built by hand: version, header text (padded here), raw data bytes. */
function handMade(major: number, header: string, data: Uint8Array): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + header.length + 1) / 64) * 64;
  const padded = header + ' '.repeat(total - prefix - header.length - 1) + '\n';
  const headerBytes = new TextEncoder().encode(padded);
  const out = new Uint8Array(prefix + headerBytes.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerBytes.length, true);
  else view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, prefix);
  out.set(data, prefix + headerBytes.length);
  return out;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('npy', () => {
  it('round-trips every dtype and shape, with a 64-byte aligned header', async () => {
    const arrays: NpyArray[] = [
      { dtype: 'float32', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5) },
      { dtype: 'float64', shape: [2, 2, 3], data: Float64Array.from({ length: 12 }, (_, i) => Math.PI * i) },
      { dtype: 'int32', shape: [5], data: Int32Array.from([-2, -1, 0, 1, 2 ** 31 - 1]) },
      { dtype: 'uint8', shape: [2, 3], data: Uint8Array.from([0, 1, 2, 253, 254, 255]) },
      { dtype: 'float32', shape: [], data: Float32Array.from([42]) },
      { dtype: 'float64', shape: [0, 3], data: new Float64Array(0) },
    ];
    for (const array of arrays) {
      const bytes = encodeNpy(array);
      const headerLength = new DataView(bytes.buffer).getUint16(8, true);
      expect((10 + headerLength) % 64).toBe(0);
      const file = path.join(dir, `${array.dtype}-${array.shape.join('x')}.npy`);
      await writeNpy(file, array);
      const back = await readNpy(file);
      expect(back.dtype).toBe(array.dtype);
      expect(back.shape).toEqual(array.shape);
      expect(Array.from(back.data)).toEqual(Array.from(array.data));
    }
  });

  it('reads version 2.0 and 3.0 headers and an unaligned buffer', () => {
    const data = Float32Array.from([1.5, -2, 3.25]);
    for (const major of [2, 3]) {
      const bytes = handMade(major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", bytesOf(data));
      const array = decodeNpy(bytes);
      expect(array.shape).toEqual([3]);
      expect(Array.from(array.data)).toEqual([1.5, -2, 3.25]);
      // The same bytes at an odd offset of a larger buffer.
      const shifted = new Uint8Array(bytes.length + 1);
      shifted.set(bytes, 1);
      expect(Array.from(decodeNpy(shifted.subarray(1)).data)).toEqual([1.5, -2, 3.25]);
    }
  });

  it('refuses Fortran order, big-endian, other dtypes, short files and other versions with a clear message', () => {
    const four = bytesOf(Float32Array.from([1, 2, 3, 4]));
    const header = (descr: string, fortran: string, shape: string): string =>
      `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
    expect(() => decodeNpy(handMade(1, header('<f4', 'True', '(2, 2)'), four))).toThrow(/Fortran-order/);
    expect(() => decodeNpy(handMade(1, header('>f4', 'False', '(2, 2)'), four))).toThrow(/big-endian/);
    expect(() => decodeNpy(handMade(1, header('<c8', 'False', '(2,)'), four))).toThrow(/unsupported dtype '<c8'/);
    expect(() =>
      decodeNpy(handMade(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", four)),
    ).toThrow(/structured dtypes/);
    expect(() => decodeNpy(handMade(1, header('<f4', 'False', '(2, 3)'), four))).toThrow(
      /truncated data: .* needs 24 bytes, the file has 16/,
    );
    expect(() => decodeNpy(handMade(1, header('<f4', 'False', '(3,)'), four))).toThrow(/4 bytes after the data/);
    const good = handMade(1, header('<f4', 'False', '(4,)'), four);
    expect(() => decodeNpy(good.subarray(0, 40))).toThrow(/truncated header/);
    const v4 = Uint8Array.from(good);
    v4[6] = 4;
    expect(() => decodeNpy(v4)).toThrow(/unsupported format version 4.0/);
    expect(() => decodeNpy(new TextEncoder().encode('hello, this is not numpy'))).toThrow(NpyFormatError);
    expect(() => encodeNpy({ dtype: 'float32', shape: [2, 2], data: new Float32Array(3) })).toThrow(/holds 4 values/);
  });

  // Debian's python3 (which .ci/run gives numpy) first, as the PyTorch engine looks for its python.
  const python = ['/usr/bin/python3', 'python3'].find(
    (candidate) => spawnSync(candidate, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0,
  );
  const numpy =
    python === undefined
      ? null
      : spawnSync(python, ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
  const haveNumpy = python !== undefined;

  it.skipIf(!haveNumpy)(
    `interoperates with NumPy ${numpy ? numpy.stdout.trim() : '(not installed)'} both ways`,
    async () => {
      const ours = path.join(dir, 'ours.npy');
      await writeNpy(ours, { dtype: 'float64', shape: [2, 3], data: Float64Array.from([1, 2, 3, 4, 5, 6.5]) });
      const script = `
import sys, numpy as np
a = np.load(sys.argv[1])
assert a.dtype == np.float64 and a.shape == (2, 3) and a[1, 2] == 6.5 and a.flags['C_CONTIGUOUS'], (a.dtype, a.shape)
x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(sys.argv[2] + '-%d.npy' % v[0], 'wb') as f:
        np.lib.format.write_array(f, x, version=v)
np.save(sys.argv[2] + '-u8.npy', np.array([[0, 7], [255, 1]], dtype=np.uint8))
np.save(sys.argv[2] + '-i4.npy', np.array([-5, 6], dtype=np.int32))
np.save(sys.argv[2] + '-f.npy', np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
np.save(sys.argv[2] + '-be.npy', np.ones(3, dtype='>f8'))
`;
      const prefix = path.join(dir, 'numpy');
      const run = spawnSync(python ?? 'python3', ['-c', script, ours, prefix], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      for (const v of [1, 2, 3]) {
        const x = await readNpy(`${prefix}-${v}.npy`);
        expect(x.dtype).toBe('float32');
        expect(x.shape).toEqual([2, 3, 4]);
        expect(Array.from(x.data)).toEqual(Array.from({ length: 24 }, (_, i) => i / 8));
      }
      const u8 = await readNpy(`${prefix}-u8.npy`);
      expect([u8.dtype, u8.shape, Array.from(u8.data)]).toEqual(['uint8', [2, 2], [0, 7, 255, 1]]);
      const i4 = await readNpy(`${prefix}-i4.npy`);
      expect([i4.dtype, i4.shape, Array.from(i4.data)]).toEqual(['int32', [2], [-5, 6]]);
      await expect(readNpy(`${prefix}-f.npy`)).rejects.toThrow(/numpy-f\.npy: Fortran-order/);
      await expect(readNpy(`${prefix}-be.npy`)).rejects.toThrow(/big-endian/);
      // Our writer's bytes equal NumPy's for the same array (format 1.0).
      const mine = encodeNpy({
        dtype: 'float32',
        shape: [2, 3, 4],
        data: Float32Array.from({ length: 24 }, (_, i) => i / 8),
      });
      expect(Buffer.from(mine).equals(readFileSync(`${prefix}-1.npy`))).toBe(true);
    },
  );
});
