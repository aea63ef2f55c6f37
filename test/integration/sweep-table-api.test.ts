import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessChannel, ProcessLauncher } from '../../src/jobs/channel';
import { createAppService, type AppService } from '../../src/service/app-service';
import type { ApiMethod, ApiOutput } from '../../src/shared/api';
import { RunStore } from '../../src/store/run-store';
import { FIGURES, reference, seedTableStore } from '../helpers/table-store';

/**
 * The app API's sweeps and paper tables through the service, with a launcher that records the jobs it
 * is asked to start and never finishes them (the engine is not what is tested here).
 */

const launched: unknown[] = [];
const recordingLauncher: ProcessLauncher = () => {
  const channel: ProcessChannel = {
    pid: 4242,
    send: (message) => void launched.push(message),
    onMessage: () => undefined,
    onExit: () => undefined,
    onStderr: () => undefined,
    kill: () => undefined,
  };
  return channel;
};

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-sweep-api-'));
let service: AppService;
let finetunes: string[];

beforeAll(() => {
  const store = RunStore.open(path.join(dataDir, 'mimir.db'));
  finetunes = seedTableStore(store, FIGURES, path.join(dataDir, 'runs')).map((run) => run.id);
  for (const run of store.listRuns({})) {
    store.updateRunStatus(run.id, 'running');
    store.updateRunStatus(run.id, 'done');
  }
  store.close();
  service = createAppService({ launch: recordingLauncher, forced: null, dataDir });
});
afterAll(() => {
  service.close();
});

async function call<M extends ApiMethod>(method: M, input: unknown): Promise<ApiOutput<M>> {
  const response = await service.handle({ method, input });
  if (!response.ok) throw Object.assign(new Error(response.error.message), { code: response.error.code });
  return response.value as ApiOutput<M>;
}

describe('sweeps through the app API', () => {
  it('sweeps.create queues the cross product as runs of a new experiment and starts the first', async () => {
    const { sweep, runs } = await call('sweeps.create', {
      name: 'api sweep',
      base: { mode: 'mimir', model: 'micro', epochs: 1, batchSize: 8 },
      grid: [{ path: 'mi.lambda', values: [1e-5, 1e-3] }],
      seeds: [0, 1],
    });
    expect(runs.map((r) => [r.name, r.experimentId])).toEqual([
      ['api sweep · mi.lambda=0.00001 · seed 0', sweep.experimentId],
      ['api sweep · mi.lambda=0.00001 · seed 1', sweep.experimentId],
      ['api sweep · mi.lambda=0.001 · seed 0', sweep.experimentId],
      ['api sweep · mi.lambda=0.001 · seed 1', sweep.experimentId],
    ]);
    expect(runs.map((r) => r.status)).toEqual(['running', 'queued', 'queued', 'queued']);
    expect(launched.at(-1)).toMatchObject({ type: 'run', job: { kind: 'pretrain', config: { seed: 0 } } });
    const got = await call('sweeps.get', { experimentId: sweep.experimentId });
    expect(got.runs.map((r) => r.id)).toEqual(runs.map((r) => r.id));
    expect((await call('sweeps.list', {})).map((s) => s.name)).toEqual(['api sweep']);
  });

  it("fine-tunes every run of a list in one sweep, each from its run's folder with its seed", async () => {
    const store = await call('runs.list', { kind: 'pretrain', status: 'done' });
    const parents = store.filter((run) => run.name.startsWith('mimir lambda')).slice(0, 2);
    const { runs } = await call('sweeps.create', {
      name: 'fine-tune them',
      kind: 'finetune',
      base: { method: 'pgd-at', source: { kind: 'pretrained', checkpoint: '/x' }, epochs: 1, batchSize: 8 },
      fromRuns: parents.map((run) => run.id),
    });
    expect(
      runs.map((run) => [run.parentRunId, (run.config.source as { checkpoint: string }).checkpoint, run.config.seed]),
    ).toEqual(parents.map((parent) => [parent.id, path.join(dataDir, 'runs', parent.id), parent.config.seed]));
    // A run that has not finished has no final checkpoint to start from.
    const queued = (await call('runs.list', { status: 'queued' }))[0];
    if (!queued) throw new Error('expected a queued run');
    await expect(
      call('sweeps.create', {
        name: 'too early',
        kind: 'finetune',
        base: { source: { kind: 'pretrained', checkpoint: '/x' } },
        fromRuns: [queued.id],
      }),
    ).rejects.toMatchObject({ code: 'invalid-input', message: expect.stringContaining('which is queued') });
  });

  it('sweeps.create refuses a bad grid with every reason, as invalid input', async () => {
    await expect(
      call('sweeps.create', {
        name: 'bad',
        base: { mode: 'mimir', model: 'micro' },
        grid: [
          { path: 'mi.lamda', values: [1] },
          { path: 'epochs', values: ['two'] },
        ],
      }),
    ).rejects.toMatchObject({
      code: 'invalid-input',
      message: expect.stringMatching(/--grid mi.lamda: unknown path[\s\S]*--grid epochs: the value "two" is refused/),
    });
  });
});

describe('tables.build', () => {
  it('returns the grouped table and its CSV, Markdown and LaTeX, numbers from the stored evaluations', async () => {
    const built = await call('tables.build', {
      runIds: finetunes,
      columns: ['method', 'natural', 'robust'],
      group: true,
    });
    expect(built.table.rows.map((r) => [r.label, r.n, r.runIds])).toEqual([
      ['pretrain.mi.lambda=0.00001', 3, finetunes.slice(0, 3)],
      ['pretrain.mi.lambda=0.001', 2, finetunes.slice(3)],
    ]);
    const natural = reference(FIGURES.slice(0, 3).map((f) => f.natural));
    const cell = built.table.rows[0]?.cells[1];
    expect(cell?.kind === 'number' ? cell.stat.mean : null).toBeCloseTo(natural.mean, 12);
    expect(cell?.kind === 'number' ? cell.stat.std : null).toBeCloseTo(natural.std, 12);
    expect(built.table.rows[0]?.cells[0]).toEqual({ kind: 'text', text: 'pgd-at' });
    const worst = reference(FIGURES.slice(3).map((f) => f.worst));
    expect(built.csv.split('\n')[0]).toBe('run,n,method,method_std,natural,natural_std,robust,robust_std');
    expect(built.csv.split('\n')[2]).toBe(
      `pretrain.mi.lambda=0.001,2,pgd-at,,${(reference(FIGURES.slice(3).map((f) => f.natural)).mean * 100).toFixed(2)},${(
        reference(FIGURES.slice(3).map((f) => f.natural)).std * 100
      ).toFixed(2)},${(worst.mean * 100).toFixed(2)},${(worst.std * 100).toFixed(2)}`,
    );
    expect(built.markdown).toContain('| pretrain.mi.lambda=0.001 | 2 | pgd-at |');
    expect(built.latex).toContain('\\begin{tabular}{lrrrr}');
  });

  it("runs.figures gives each run's latest natural and worst-case accuracy, null without an evaluation", async () => {
    const figures = await call('runs.figures', { ids: [...finetunes, 'no-such-run'] });
    finetunes.forEach((id, i) => {
      expect(figures[id]).toEqual({ natural: FIGURES[i]?.natural, robust: FIGURES[i]?.worst });
    });
    expect(figures['no-such-run']).toBeNull();
  });

  it("labels groups by what differs between them, not by their first members' pre-training seeds", async () => {
    const reordered = [finetunes[0], finetunes[1], finetunes[2], finetunes[4], finetunes[3]];
    const built = await call('tables.build', { runIds: reordered, columns: ['natural'], group: true });
    expect(built.table.rows.map((r) => r.label)).toEqual(['pretrain.mi.lambda=0.00001', 'pretrain.mi.lambda=0.001']);
  });

  it('refuses an unknown column as invalid input', async () => {
    await expect(call('tables.build', { runIds: finetunes, columns: ['natral'] })).rejects.toMatchObject({
      code: 'invalid-input',
      message: expect.stringContaining('unknown column "natral"'),
    });
  });
});
