import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import { RunStore } from '../../src/store/run-store';

/**
 * files.read, the app API's way to a file a run wrote: only regular files inside the run's folder, never
 * through a link out of it, never waiting on a named pipe, never more than the size limit.
 */

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-files-'));
const outside = mkdtempSync(path.join(os.tmpdir(), 'mimir-files-outside-'));
const runDir = path.join(dataDir, 'runs', 'run-files-1');
let service: AppService;

beforeAll(() => {
  mkdirSync(path.join(runDir, 'previews'), { recursive: true });
  writeFileSync(path.join(runDir, 'previews', 'step.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  writeFileSync(path.join(outside, 'secret.txt'), 'not the run’s');
  symlinkSync(path.join(outside, 'secret.txt'), path.join(runDir, 'leak.txt'));
  symlinkSync(outside, path.join(runDir, 'elsewhere'));
  symlinkSync(path.join(runDir, 'previews', 'step.png'), path.join(runDir, 'latest.png'));
  const store = RunStore.open(path.join(dataDir, 'mimir.db'));
  store.createRun({ id: 'run-files-1', name: 'files', kind: 'pretrain', outDir: runDir });
  store.updateRunStatus('run-files-1', 'cancelled');
  store.close();
  service = createAppService({ launch: forkLauncher, forced: null, dataDir });
});
afterAll(() => {
  service.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const read = (file: string) => service.handle({ method: 'files.read', input: { runId: 'run-files-1', path: file } });

describe('files.read', () => {
  it('reads a file of the run, also through a link that stays inside its folder', async () => {
    for (const file of ['previews/step.png', 'latest.png']) {
      expect(await read(file)).toEqual({
        ok: true,
        value: { mime: 'image/png', base64: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64'), bytes: 4 },
      });
    }
  });

  it('does not follow a symbolic link out of the run folder', async () => {
    for (const file of ['leak.txt', 'elsewhere/secret.txt']) {
      expect(await read(file)).toEqual({
        ok: false,
        error: {
          code: 'invalid-input',
          message: expect.stringContaining(`outside run run-files-1's folder; only files inside it are read`),
        },
      });
    }
    expect(await read('../../../etc/passwd')).toMatchObject({ ok: false, error: { code: 'invalid-input' } });
    expect(await read('none.png')).toMatchObject({ ok: false, error: { code: 'not-found' } });
  });

  it('refuses a named pipe at once instead of waiting for a writer, and a folder', async () => {
    const fifo = path.join(runDir, 'pipe.png');
    const made = spawnSync('mkfifo', [fifo]);
    expect(made.status, made.stderr?.toString()).toBe(0);
    expect(await read('pipe.png')).toEqual({
      ok: false,
      error: { code: 'invalid-input', message: expect.stringMatching(/pipe\.png is a named pipe; only regular files/) },
    });
    expect(await read('previews')).toMatchObject({
      ok: false,
      error: { code: 'invalid-input', message: expect.stringMatching(/previews is a folder/) },
    });
  });

  it('refuses a file over the size limit without reading it', async () => {
    const big = path.join(runDir, 'big.json');
    writeFileSync(big, '');
    truncateSync(big, (16 << 20) + 1); // sparse: no 16 MiB written
    expect(await read('big.json')).toMatchObject({
      ok: false,
      error: {
        code: 'invalid-input',
        message: expect.stringContaining('16777217 bytes, over the 16777216-byte limit'),
      },
    });
  });
});
