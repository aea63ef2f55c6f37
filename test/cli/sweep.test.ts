import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLatestCheckpoint } from '../../src/engine/checkpoint/find';
import { RunStore } from '../../src/store/run-store';
import { listSweeps } from '../../src/store/sweeps';
import { runMimir } from '../helpers/cli';

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-sweep-'));

function baseFile(dir: string, config: object = { mode: 'mimir', model: 'micro', epochs: 1, batchSize: 8 }): string {
  const file = path.join(dir, 'base.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const GRID = ['--grid', 'mi.lambda=1e-5,1e-3', '--grid', 'attack.steps=1,10', '--seeds', '0,1,2'];

interface DryRunRun {
  index: number;
  name: string;
  seed: number;
  assignment: Record<string, unknown>;
  config: { seed: number; mi: { lambda: number }; attack: { steps: number }; mode: string; model: string };
}

describe('mimir sweep', () => {
  it('--dry-run --json lists the cross product, each run with its own seed, and queues nothing', () => {
    const dir = tmp();
    const result = runMimir([
      'sweep',
      '--config',
      baseFile(dir),
      ...GRID,
      '--name',
      'lam',
      '--dry-run',
      '--json',
      '--data-dir',
      dir,
    ]);
    expect(result.status, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { type: string; dryRun: boolean; kind: string; runs: DryRunRun[] };
    expect(out).toMatchObject({ type: 'sweep', dryRun: true, kind: 'pretrain' });
    expect(out.runs).toHaveLength(12);
    const triples = out.runs.map((r) => [r.config.mi.lambda, r.config.attack.steps, r.config.seed]);
    const expected = [1e-5, 1e-3].flatMap((lambda) =>
      [1, 10].flatMap((steps) => [0, 1, 2].map((seed) => [lambda, steps, seed])),
    );
    expect(triples).toEqual(expected);
    for (const run of out.runs) {
      expect(run.seed).toBe(run.config.seed);
      expect(run.assignment).toEqual({ 'mi.lambda': run.config.mi.lambda, 'attack.steps': run.config.attack.steps });
      expect(run.config).toMatchObject({ mode: 'mimir', model: 'micro' });
    }
    expect(out.runs[11]?.name).toBe('lam · mi.lambda=0.001 attack.steps=10 · seed 2');
  });

  it('refuses an unknown path and a value of the wrong type, saying which and why, exit 1', () => {
    const dir = tmp();
    const result = runMimir([
      'sweep',
      '--config',
      baseFile(dir),
      '--grid',
      'mi.lamda=1e-5',
      '--grid',
      'attack.steps=one,2',
      '--dry-run',
    ]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('mimir: the sweep is refused:');
    expect(result.stderr).toContain('--grid mi.lamda: unknown path: mi has no field "lamda"');
    expect(result.stderr).toMatch(/--grid attack.steps: the value "one" is refused: .*expected number/);

    const json = runMimir(['sweep', '--config', baseFile(dir), '--grid', 'attack.steps', '--dry-run', '--json']);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      type: 'failed',
      message: expect.stringContaining('--grid "attack.steps": write path=value,value'),
      step: null,
      lastCheckpoint: null,
    });
  });

  it('--queue-only stores the runs queued in one sweep experiment of the data folder', () => {
    const dir = tmp();
    const result = runMimir([
      'sweep',
      '--config',
      baseFile(dir),
      '--grid',
      'mode=mae,mimir',
      '--seeds',
      '3,4',
      '--name',
      'modes',
      '--queue-only',
      '--json',
      '--data-dir',
      dir,
    ]);
    expect(result.status, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { experimentId: number; runs: { id: string }[] };
    const store = RunStore.open(path.join(dir, 'mimir.db'));
    try {
      expect(listSweeps(store).map((s) => s.name)).toEqual(['modes']);
      const runs = store.listRuns({ experimentId: out.experimentId });
      expect(runs.map((r) => r.id).sort()).toEqual(out.runs.map((r) => r.id).sort());
      expect(runs.map((r) => [r.status, r.config.mode, r.config.seed]).sort()).toEqual([
        ['queued', 'mae', 3],
        ['queued', 'mae', 4],
        ['queued', 'mimir', 3],
        ['queued', 'mimir', 4],
      ]);
    } finally {
      store.close();
    }
  });

  it('without --dry-run queues the sweep and runs it to the end through the job runner, one JSON line per event', () => {
    const dir = tmp();
    const base = { model: 'micro', dataset: { kind: 'builtin', size: 32, imageSize: 16 }, epochs: 1, batchSize: 32 };
    const result = runMimir([
      'sweep',
      '--config',
      baseFile(dir, base),
      '--grid',
      'mode=mae,mimir',
      '--name',
      'run now',
      '--json',
      '--data-dir',
      dir,
    ]);
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as { type: string; id?: string; status?: string; failed?: number; runs?: { id: string }[] },
      );
    expect(lines[0]?.type).toBe('sweep');
    const ids = (lines[0]?.runs ?? []).map((r) => r.id);
    expect(ids).toHaveLength(2);
    const ended = lines.filter((line) => line.type === 'run-ended');
    expect(ended.map((line) => [line.id, line.status]).sort()).toEqual(ids.map((id) => [id, 'done']).sort());
    expect(lines.at(-1)).toEqual({ type: 'done', failed: 0 });
    const store = RunStore.open(path.join(dir, 'mimir.db'));
    try {
      for (const id of ids) expect(store.getRun(id)).toMatchObject({ status: 'done', summary: expect.any(Object) });
    } finally {
      store.close();
    }
  }, 180_000);

  it('sweeps the decoder size (Table XIX) over a preset: decoder.depth x decoder.width expand, train, and checkpoint that decoder', async () => {
    const dir = tmp();
    const base = {
      mode: 'mae',
      model: 'micro',
      dataset: { kind: 'builtin', size: 32, imageSize: 16 },
      epochs: 1,
      batchSize: 32,
    };
    const grid = ['--grid', 'decoder.depth=1,2', '--grid', 'decoder.width=16,32'];
    const dry = runMimir(['sweep', '--config', baseFile(dir, base), ...grid, '--dry-run', '--json']);
    expect(dry.status, dry.stderr).toBe(0);
    const planned = (JSON.parse(dry.stdout) as { runs: { config: { decoder: unknown; model: string } }[] }).runs;
    expect(planned.map((r) => r.config.decoder)).toEqual([
      { depth: 1, width: 16 },
      { depth: 1, width: 32 },
      { depth: 2, width: 16 },
      { depth: 2, width: 32 },
    ]);
    expect(planned.every((r) => r.config.model === 'micro')).toBe(true);

    const result = runMimir(['sweep', '--config', baseFile(dir, base), ...grid, '--json', '--data-dir', dir]);
    expect(result.status, result.stderr).toBe(0);
    const first = JSON.parse(result.stdout.split('\n')[0] ?? '') as { runs: { id: string }[] };
    const store = RunStore.open(path.join(dir, 'mimir.db'));
    try {
      const decoders: unknown[] = [];
      for (const { id } of first.runs) {
        const run = store.getRun(id);
        expect(run?.status).toBe('done');
        const latest = await findLatestCheckpoint(path.join(run?.outDir ?? '', 'checkpoints'));
        if (latest.status !== 'ok') throw new Error(`run ${id} has no checkpoint: ${latest.status}`);
        const model = latest.manifest.modelConfig as { decoderDepth: number; decoderWidth: number; depth: number };
        // The preset's encoder (depth 2) with the swept decoder.
        expect(model.depth).toBe(2);
        decoders.push([model.decoderDepth, model.decoderWidth]);
      }
      expect(decoders.sort()).toEqual([
        [1, 16],
        [1, 32],
        [2, 16],
        [2, 32],
      ]);
    } finally {
      store.close();
    }
  }, 300_000);

  it('refuses decoder heads that do not divide the width, naming the decoder setting, exit 1', () => {
    const dir = tmp();
    const base = { mode: 'mae', model: 'micro', epochs: 1 };
    const result = runMimir(['sweep', '--config', baseFile(dir, base), '--grid', 'decoder.heads=2,3', '--dry-run']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('the combination decoder.heads=3 seed 0 is refused');
    expect(result.stderr).toContain('decoder.heads: decoderWidth 32 is not divisible by decoderHeads 3');
    expect(result.stderr).not.toContain('decoder.heads=2 seed');
  });
});
