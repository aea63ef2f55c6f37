import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { writeFileAtomic } from '../../../src/engine/io/atomic-file';
import { writeNpy } from '../../../src/engine/io/npy';
import { writePngStrip } from '../../../src/engine/io/png';
import { ROOT } from '../../helpers/build';

/** Every path whose open handle was fsynced, in order (files and folders alike). */
const synced: string[] = [];

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      synced.push(path.resolve(String(args[0])));
      await sync();
    };
    return handle;
  };
  return { ...actual, open, default: { ...actual, open } };
});

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-atomic-'));

beforeEach(() => {
  synced.length = 0;
});

describe('writeFileAtomic, the one way the workbench writes a file', () => {
  it('replaces the file, flushing the temporary file before the rename and the folder after it', async () => {
    const dir = tmp();
    const file = path.join(dir, 'config.json');
    writeFileSync(file, 'old');
    await writeFileAtomic(file, 'new text');
    expect(readFileSync(file, 'utf8')).toBe('new text');
    expect(readdirSync(dir)).toEqual(['config.json']);
    expect(synced).toHaveLength(2);
    expect(path.dirname(synced[0] ?? '')).toBe(dir);
    expect(path.basename(synced[0] ?? '')).toMatch(/^\.config\.json\.tmp-\d+-[0-9a-f]{8}$/);
    expect(synced[1]).toBe(dir);

    await writeFileAtomic(file, async (handle) => {
      await handle.write(Uint8Array.of(1, 2));
      await handle.write(Uint8Array.of(3));
    });
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
  });

  it('leaves the old file and no temporary file when writing or renaming fails', async () => {
    const dir = tmp();
    const file = path.join(dir, 'report.json');
    writeFileSync(file, 'kept');
    await expect(
      writeFileAtomic(file, async (handle) => {
        await handle.write(Uint8Array.of(1));
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readFileSync(file, 'utf8')).toBe('kept');
    expect(readdirSync(dir)).toEqual(['report.json']);

    // The rename fails when a folder holds the name: the temporary file goes too.
    mkdirSync(path.join(dir, 'taken'));
    await expect(writeFileAtomic(path.join(dir, 'taken'), 'x')).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(['report.json', 'taken']);
  });

  it('is what the PNG and .npy writers use: flushed, and nothing left behind on failure', async () => {
    const dir = tmp();
    const png = path.join(dir, 'strip.png');
    await writePngStrip(png, new Float32Array(2 * 4 * 4 * 3).fill(0.5), 2, 4);
    expect(synced).toContain(dir);
    expect(synced.some((p) => path.basename(p).startsWith('.strip.png.tmp-'))).toBe(true);
    const npy = path.join(dir, 'x.npy');
    await writeNpy(npy, { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) });
    expect(synced.some((p) => path.basename(p).startsWith('.x.npy.tmp-'))).toBe(true);

    mkdirSync(path.join(dir, 'busy.png'));
    await expect(writePngStrip(path.join(dir, 'busy.png'), new Float32Array(48), 1, 4)).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(['busy.png', 'strip.png', 'x.npy']);
  });

  it('no module writes or renames a file any other way', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (entry.name !== 'renderer') walk(full);
          continue;
        }
        if (!entry.name.endsWith('.ts') || full.endsWith(path.join('io', 'atomic-file.ts'))) continue;
        readFileSync(full, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (/\b(writeFile|writeFileSync|renameSync|appendFile|createWriteStream)\b/.test(line))
              offenders.push(`${path.relative(ROOT, full)}:${i + 1}: ${line.trim()}`);
          });
      }
    };
    walk(path.join(ROOT, 'src'));
    expect(offenders).toEqual([]);
  });
});
