import type * as Fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { disposeParams, type ParamMap } from '../../src/engine/model';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { ApiMethod } from '../../src/shared/api';
import { RunStore } from '../../src/store/run-store';
import { useBackend } from '../helpers/backend';
import { trainedClassifierCheckpoint } from '../engine/export/fixtures';

/**
 * In the Electron app the service runs in the main process, where a synchronous file read freezes every
 * window (on a slow or network disk, for as long as the disk takes). The app API's file-handling methods
 * must therefore make no synchronous node:fs call: this test records every one the workbench's own
 * modules make while they run.
 */

const syncCalls: string[] = [];
let recording = false;

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof Fs>();
  const wrapped: Record<string, unknown> = { ...actual };
  for (const [name, value] of Object.entries(actual)) {
    if (!name.endsWith('Sync') || typeof value !== 'function') continue;
    wrapped[name] = (...args: unknown[]) => {
      if (recording) syncCalls.push(`${name}(${String(args[0])})`);
      return (value as (...a: unknown[]) => unknown)(...args);
    };
  }
  return { ...wrapped, default: wrapped };
});

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-main-thread-'));
let service: AppService;
let classifier: { path: string; params: ParamMap };

beforeAll(async () => {
  await useBackend('cpu');
  classifier = await trainedClassifierCheckpoint(path.join(dataDir, 'runs', 'ft-run-1'), { classes: 4, steps: 0 });
  const store = RunStore.open(path.join(dataDir, 'mimir.db'));
  store.createRun({
    id: 'ft-run-1',
    name: 'fine-tune',
    kind: 'finetune',
    outDir: path.join(dataDir, 'runs', 'ft-run-1'),
  });
  store.updateRunStatus('ft-run-1', 'running');
  store.addArtifact('ft-run-1', { kind: 'checkpoint', path: classifier.path, step: 0, metadata: { epoch: 0 } });
  store.updateRunStatus('ft-run-1', 'done');
  store.close();
  service = createAppService({ launch: forkLauncher, forced: null, dataDir });
});
afterAll(() => {
  disposeParams(classifier.params);
  service.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: ApiMethod, input: unknown): Promise<unknown> {
  const response = await service.handle({ method, input });
  if (!response.ok) throw new Error(`${method}: ${response.error.message}`);
  return response.value;
}

describe('the app API in the main process', () => {
  beforeEach(() => {
    syncCalls.length = 0;
  });

  it("stores an evaluation's report without reading a file on the main process", async () => {
    recording = true;
    try {
      const finished = new Promise<string>((resolve) => {
        const stop = service.onPush((message) => {
          if (message.type !== 'run-updated' || !['done', 'failed'].includes(message.run.status)) return;
          stop();
          resolve(message.run.status);
        });
      });
      const run = (await call('runs.create', {
        kind: 'evaluate',
        name: 'natural only',
        config: {
          checkpoint: classifier.path,
          dataset: { kind: 'builtin', split: 'test', classes: 4, imageSize: 16, size: 64 },
          examples: { count: 8 },
          attacks: [{ attack: 'natural' }],
        },
      })) as { id: string };
      expect(await finished).toBe('done');
      const evaluations = (await call('evaluations.list', { runId: run.id })) as unknown[];
      expect(evaluations).toHaveLength(1);
    } finally {
      recording = false;
    }
    expect(syncCalls.filter((call) => call.startsWith('read'))).toEqual([]);
  });

  it('lists, exports, imports and reads files without a synchronous file-system call', async () => {
    const file = path.join(dataDir, 'exports', 'model.safetensors');
    recording = true;
    try {
      await call('exports.suggest', { checkpoint: classifier.path });
      await call('exports.write', { checkpoint: classifier.path, file });
      await call('exports.import', { file });
      const listed = (await call('checkpoints.list', {})) as { origin: string }[];
      expect(listed.map((entry) => entry.origin).sort()).toEqual(['import', 'run']);
      await call('files.read', {
        runId: 'ft-run-1',
        path: path.relative(path.join(dataDir, 'runs', 'ft-run-1'), path.join(classifier.path, 'checkpoint.json')),
      });
      await call('runs.delete', { id: 'ft-run-1', deleteFiles: true });
    } finally {
      recording = false;
    }
    expect(syncCalls).toEqual([]);
  });
});
