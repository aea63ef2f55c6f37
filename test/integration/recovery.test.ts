import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { Run } from '../../src/shared/store-types';
import { RunStore } from '../../src/store/run-store';

let service: AppService | null = null;
afterEach(() => {
  service?.close();
  service = null;
});

async function getRun(id: string): Promise<Run> {
  const response = await service?.handle({ method: 'runs.get', input: { id } });
  if (!response?.ok) throw new Error(`runs.get: ${response?.error.message}`);
  return response.value as Run;
}

describe('start-up recovery', () => {
  it('leaves a run whose engine process still lives running, and interrupts it when that process ends', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-recovery-'));
    // An engine that outlived the app that started it (a stand-in process), and one that did not.
    const engine = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const gonePid = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    if (engine.pid === undefined) throw new Error('no pid');
    const store = RunStore.open(path.join(dataDir, 'mimir.db'));
    const live = store.createRun({ name: 'live engine', kind: 'pretrain', outDir: path.join(dataDir, 'runs/a') });
    const dead = store.createRun({ name: 'dead engine', kind: 'pretrain', outDir: path.join(dataDir, 'runs/b') });
    store.updateRunStatus(live.id, 'running', { pid: engine.pid });
    store.updateRunStatus(dead.id, 'running', { pid: Number(gonePid) });
    store.close();

    try {
      service = createAppService({ launch: forkLauncher, forced: null, dataDir });
      expect(await getRun(live.id)).toMatchObject({ status: 'running', pid: engine.pid });
      expect(await getRun(dead.id)).toMatchObject({ status: 'interrupted' });
    } finally {
      engine.kill('SIGKILL');
    }
    for (const deadline = Date.now() + 30_000; (await getRun(live.id)).status === 'running';) {
      if (Date.now() > deadline) throw new Error('the run stayed running after its engine ended');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const after = await getRun(live.id);
    expect(after.status).toBe('interrupted');
    const logs = await service.handle({ method: 'runs.logs', input: { id: live.id } });
    expect(JSON.stringify(logs)).toContain(`its engine process ${engine.pid}`);
  });
});
