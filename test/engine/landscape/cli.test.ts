import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOutDir, formatLandscape, parseGrid, parseSpan } from '../../../src/cli/commands/landscape';
import { saveCheckpoint } from '../../../src/engine/checkpoint';
import { disposeParams, initClassifierParams } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { FinetuneRecord } from '../../../src/shared/finetune-config';
import { LandscapeResult } from '../../../src/shared/landscape';
import { RunEvent } from '../../../src/shared/run-events';
import { useBackend } from '../../helpers/backend';
import { microConfig, randomizeParams } from '../model/fixtures';

// Runs the built command line (out/main/cli.js, made by `npx electron-vite build`); builds nothing itself.
const root = path.resolve(import.meta.dirname, '../../..');
const built = existsSync(path.join(root, 'out/main/cli.js'));
const dir = mkdtempSync(path.join(tmpdir(), 'mimir-landscape-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mimir(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [path.join(root, 'bin/mimir.mjs'), 'landscape', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, MIMIR_BACKEND: '' },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('landscape command helpers', () => {
  it('parse grids, spans and the default output folder', () => {
    expect(parseGrid('21')).toBe(21);
    expect(parseGrid('7x3')).toEqual([7, 3]);
    expect(() => parseGrid('0')).toThrow();
    expect(() => parseGrid('3x')).toThrow();
    expect(parseSpan('0.5')).toEqual([-0.5, 0.5]);
    expect(parseSpan('-1:2')).toEqual([-1, 2]);
    expect(() => parseSpan('2:1')).toThrow();
    expect(() => parseSpan('-1')).toThrow();
    expect(defaultOutDir('/r/run/checkpoints/epoch-0005', 'ce')).toBe('/r/run/landscapes/epoch-0005-ce');
    expect(defaultOutDir('/r/models/best', 'recon')).toBe('/r/models/landscape-best-recon');
  });

  it('draws a heat map with the checkpoint at the centre, beta rising upwards', () => {
    const text = formatLandscape(
      LandscapeResult.parse({
        format: 'mimir-landscape',
        version: 1,
        alphas: [-1, 0, 1],
        betas: [-1, 0, 1],
        losses: [
          [9, 1, 1],
          [1, 0, 1],
          [1, 1, null],
        ],
        accuracy: [
          [0, 1, 1],
          [1, 1, 1],
          [1, 1, 0],
        ],
        min: { value: 0, alpha: 0, beta: 0 },
        max: { value: 9, alpha: -1, beta: -1 },
        centre: 0,
        protocol: {
          checkpoint: '/c',
          checkpointKind: 'finetune',
          checkpointEpoch: 1,
          checkpointStep: 1,
          dataset: { kind: 'builtin', split: 'test', location: 'generated', summary: 's' },
          examples: 8,
          loss: 'ce',
          seed: 0,
          batchSize: 8,
          directions: { distribution: 'gaussian', normalization: 'filter', ignoreBiasNorm: true },
          span: [-1, 1],
          pgd: null,
          recon: null,
          dbatMerge: null,
          backend: 'cpu',
        },
        seconds: 1,
        createdAt: new Date().toISOString(),
      }),
      '/x/landscape.json',
    );
    const rows = text.split('\n');
    expect(rows[0]).toBe('  1.00 |....??|');
    expect(rows[1]).toBe('  0.00 |..OO..|');
    expect(rows[2]).toBe(' -1.00 |@@....|');
    expect(text).toContain('centre (the checkpoint): 0.0000, accuracy 100.00%');
    expect(text).toContain('min 0.0000 at (0, 0); max 9.0000 at (-1, -1)');
  });
});

describe.skipIf(!built)('mimir landscape (built CLI)', () => {
  let checkpoint = '';
  beforeAll(async () => {
    await useBackend('cpu');
    const config = microConfig();
    const rng = new Rng(8);
    const params = initClassifierParams(config, 4, rng);
    randomizeParams(params, rng);
    const saved = await saveCheckpoint(
      path.join(dir, 'run', 'checkpoints'),
      {
        kind: 'finetune',
        epoch: 1,
        step: 4,
        // The run's own dataset (train split, 4 classes): the command's default dataset, on the test split.
        runConfig: JSON.parse(
          JSON.stringify(
            FinetuneRecord.parse({
              source: { kind: 'scratch', model: 'micro' },
              dataset: { kind: 'builtin', split: 'train', classes: 4, imageSize: 16, size: 16 },
              threat: { eps: 8 },
              optimizer: { baseLr: 5e-3 },
              numClasses: 4,
              classNames: ['a', 'b', 'c', 'd'],
            }),
          ),
        ),
        modelConfig: JSON.parse(JSON.stringify(config)),
        params,
        rng: { state: rng.state(), dataIterator: null },
      },
      { name: 'epoch-0001' },
    );
    disposeParams(params);
    checkpoint = saved.path;
  });
  const data = ['--n', '8', '--batch', '4'];

  it('--json: run events, then the result line naming a valid landscape.json', () => {
    const out = path.join(dir, 'json');
    const run = mimir([
      '--model',
      checkpoint,
      ...data,
      '--grid',
      '3x2',
      '--loss',
      'pgd-ce',
      '--pgd-steps',
      '2',
      '--eps',
      '4',
      '--out',
      out,
      '--json',
      '--backend',
      'wasm',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const last = JSON.parse(lines.pop() ?? '{}') as { type: string; path: string };
    expect(last).toEqual({ type: 'result', path: path.join(out, 'landscape.json') });
    const events = lines.map((line) => RunEvent.parse(JSON.parse(line)));
    expect(events[0]?.type).toBe('started');
    expect(events.at(-1)?.type).toBe('done');
    expect(events.filter((e) => e.type === 'metrics')).toHaveLength(6);
    const result = LandscapeResult.parse(JSON.parse(readFileSync(last.path, 'utf8')));
    expect(result.protocol).toMatchObject({ loss: 'pgd-ce', examples: 8, backend: 'wasm', dataset: { split: 'test' } });
    expect(result.protocol.dataset.summary).toContain('16 images of 16x16, 4 classes');
    expect(result.protocol.pgd?.eps).toBeCloseTo(4 / 255, 10);
    expect(result.protocol.pgd?.steps).toBe(2);
    expect(result.losses).toHaveLength(2);
    expect(result.losses[0]).toHaveLength(3);
  });

  it('a run folder: the newest checkpoint, a heat map, and landscape.json under <run>/landscapes', () => {
    const run = mimir(['--model', path.join(dir, 'run'), ...data, '--grid', '3', '--span', '0.5']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('OO');
    expect(run.stdout).toMatch(/centre \(the checkpoint\): \d/);
    expect(existsSync(path.join(dir, 'run', 'landscapes', 'epoch-0001-ce', 'landscape.json'))).toBe(true);
  });

  it('refuses a loss the checkpoint cannot give, saying which ones it can', () => {
    const run = mimir(['--model', checkpoint, ...data, '--loss', 'recon', '--out', path.join(dir, 'bad')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('needs a pre-training checkpoint');
    expect(run.stderr).toContain('use ce or pgd-ce');
  });
});
