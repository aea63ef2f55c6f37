import { describe, expect, it } from 'vitest';
import { expandSweep, parseGridArg, parseSeedsArg, type SweepExpansion } from '../../src/shared/sweep';

const BASE = { mode: 'mimir', model: 'micro', epochs: 1, batchSize: 8 };

function issuesOf(expansion: SweepExpansion): string[] {
  if (expansion.ok) throw new Error('expected the sweep to be refused');
  return expansion.issues;
}

describe('expandSweep', () => {
  it("grids the MI layer (Table XXI): block numbers and 'last', with and without the final norm; a block past the depth is refused", () => {
    const expansion = expandSweep({
      name: 'layer',
      base: BASE,
      grid: [
        { path: 'mi.layer.block', values: [1, 2, 'last'] },
        { path: 'mi.layer.finalNorm', values: [true, false] },
      ],
      seeds: [0],
    });
    if (!expansion.ok) throw new Error(expansion.issues.join('\n'));
    expect(expansion.runs.map((r) => (r.config.mi as { layer: unknown }).layer)).toEqual(
      [1, 2, 'last'].flatMap((block) => [true, false].map((finalNorm) => ({ block, finalNorm }))),
    );
    const past = issuesOf(expandSweep({ name: 'x', base: BASE, grid: [{ path: 'mi.layer.block', values: [2, 3] }] }));
    expect(past).toEqual([
      "the combination mi.layer.block=3 seed 0 is refused: mi.layer.block: block 3 is past the encoder's 2 blocks: give 1..2 or 'last'.",
    ]);
  });

  it('queues the cross product of the grid once per seed, each run with its own seed and values', () => {
    const expansion = expandSweep({
      name: 'lam',
      base: BASE,
      grid: [
        { path: 'mi.lambda', values: [1e-5, 1e-3] },
        { path: 'attack.steps', values: [1, 10] },
      ],
      seeds: [0, 1, 2],
    });
    if (!expansion.ok) throw new Error(expansion.issues.join('\n'));
    expect(expansion.runs).toHaveLength(12);
    const seen = expansion.runs.map((r) => [r.config.mi, r.config.attack, r.config.seed]);
    // Every (lambda, steps, seed) exactly once, read back from the configs themselves.
    const keys = new Set(
      expansion.runs.map((r) => {
        const mi = r.config.mi as { lambda: number };
        const attack = r.config.attack as { steps: number };
        return `${mi.lambda}/${attack.steps}/${String(r.config.seed)}`;
      }),
    );
    expect(keys.size).toBe(12);
    expect(seen).toHaveLength(12);
    expect(expansion.runs[0]).toMatchObject({
      name: 'lam · mi.lambda=0.00001 attack.steps=1 · seed 0',
      assignment: { 'mi.lambda': 1e-5, 'attack.steps': 1 },
      seed: 0,
    });
    // Defaults are filled in and the base's other fields kept.
    expect(expansion.runs[5]?.config).toMatchObject({ mode: 'mimir', epochs: 1, batchSize: 8, maskRatio: 0.75 });
    expect(expansion.runs[5]?.config).toMatchObject({ mi: { lambda: 1e-5 }, attack: { steps: 10 }, seed: 2 });
  });

  it('without a grid is the base config once per seed', () => {
    const expansion = expandSweep({ name: 's', base: BASE, seeds: [4, 7] });
    if (!expansion.ok) throw new Error(expansion.issues.join('\n'));
    expect(expansion.runs.map((r) => [r.name, r.config.seed])).toEqual([
      ['s · seed 4', 4],
      ['s · seed 7', 7],
    ]);
  });

  it('refuses an unknown path, naming the fields that exist', () => {
    const issues = issuesOf(expandSweep({ name: 's', base: BASE, grid: [{ path: 'mi.lamda', values: [1] }] }));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain('--grid mi.lamda: unknown path: mi has no field "lamda"');
    expect(issues[0]).toContain('lambda');
  });

  it('refuses a value of the wrong type or out of range, saying which value and why', () => {
    const issues = issuesOf(
      expandSweep({
        name: 's',
        base: BASE,
        grid: [
          { path: 'attack.steps', values: [1, 'ten', 2.5] },
          { path: 'mode', values: ['mimir', 'mea'] },
        ],
      }),
    );
    expect(issues).toEqual([
      expect.stringMatching(/^--grid attack.steps: the value "ten" is refused: .*expected number/),
      '--grid attack.steps: the value 2.5 is refused: attack steps must be a whole number.',
      "--grid mode: the value \"mea\" is refused: mode must be 'mae', 'adv-mae' or 'mimir'.",
    ]);
  });

  it('accepts null where the field is nullable', () => {
    const expansion = expandSweep({ name: 's', base: BASE, grid: [{ path: 'optimizer.clipGrad', values: [null, 1] }] });
    expect(expansion.ok).toBe(true);
  });

  it("refuses a path under a model preset's name, saying to write the model out", () => {
    const issues = issuesOf(expandSweep({ name: 's', base: BASE, grid: [{ path: 'model.depth', values: [1, 2] }] }));
    expect(issues[0]).toContain('model is "micro" in the base config, not an object');
  });

  it('refuses combinations the schema refuses across fields, and a seed in the grid', () => {
    const combos = issuesOf(
      expandSweep({ name: 's', base: BASE, grid: [{ path: 'attack.alpha', values: [10, 40] }], seeds: [0] }),
    );
    expect(combos).toEqual([expect.stringContaining('attack.alpha=40 seed 0 is refused: attack.alpha: alpha 40')]);
    const seed = issuesOf(expandSweep({ name: 's', base: BASE, grid: [{ path: 'seed', values: [1] }] }));
    expect(seed).toEqual(['grid.0.path: sweep seeds with seeds, not the grid']);
  });

  it('refuses an invalid base config with its schema messages', () => {
    const issues = issuesOf(expandSweep({ name: 's', base: { ...BASE, epochs: 0 } }));
    expect(issues).toEqual(['base config: epochs: epochs must be >= 1']);
  });
});

describe('grid and seed arguments', () => {
  it('reads numbers, booleans, null and text', () => {
    expect(parseGridArg('mi.lambda=1e-5,1e-3')).toEqual({ path: 'mi.lambda', values: [1e-5, 1e-3] });
    expect(parseGridArg('mode=mae, mimir')).toEqual({ path: 'mode', values: ['mae', 'mimir'] });
    expect(parseGridArg('normPixLoss=true,false')).toEqual({ path: 'normPixLoss', values: [true, false] });
    expect(parseGridArg('optimizer.clipGrad=null,"1"')).toEqual({ path: 'optimizer.clipGrad', values: [null, '1'] });
  });

  it('says what is wrong with a malformed grid or seed list', () => {
    expect(() => parseGridArg('mi.lambda')).toThrow('write path=value,value');
    expect(() => parseGridArg('mi.lambda=1,,2')).toThrow('a value is empty');
    expect(() => parseGridArg('mi..lambda=1')).toThrow('dotted field names');
    expect(parseSeedsArg('0, 1,2')).toEqual([0, 1, 2]);
    expect(() => parseSeedsArg('0,a')).toThrow('whole numbers >= 0');
    expect(() => parseSeedsArg('-1')).toThrow('whole numbers >= 0');
  });
});

describe('a sweep that starts from runs (fine-tune or evaluate a whole sweep)', () => {
  const FINETUNE = {
    method: 'pgd-at',
    source: { kind: 'pretrained', checkpoint: '/runs/first' },
    epochs: 1,
    batchSize: 8,
  };
  const parents = [
    { id: 'p0', name: 'mimir · seed 0', outDir: '/runs/p0', seed: 0 },
    { id: 'p1', name: 'mimir · seed 1', outDir: '/runs/p1', seed: 1 },
  ];

  it("runs every grid point from each run's folder with that run's seed", () => {
    const expansion = expandSweep(
      {
        name: 'ft',
        kind: 'finetune',
        base: FINETUNE,
        grid: [{ path: 'epochs', values: [1, 2] }],
        fromRuns: ['p0', 'p1'],
      },
      parents,
    );
    if (!expansion.ok) throw new Error(expansion.issues.join('\n'));
    expect(
      expansion.runs.map((r) => [
        r.name,
        r.parentRunId,
        r.seed,
        (r.config.source as { checkpoint: string }).checkpoint,
        r.config.epochs,
      ]),
    ).toEqual([
      ['ft · epochs=1 · mimir · seed 0', 'p0', 0, '/runs/p0', 1],
      ['ft · epochs=1 · mimir · seed 1', 'p1', 1, '/runs/p1', 1],
      ['ft · epochs=2 · mimir · seed 0', 'p0', 0, '/runs/p0', 2],
      ['ft · epochs=2 · mimir · seed 1', 'p1', 1, '/runs/p1', 2],
    ]);
    expect(expansion.runs.every((r) => r.config.seed === r.seed)).toBe(true);
  });

  it('evaluations take the run folder as their checkpoint; unknown runs and pre-trainings are refused', () => {
    const evaluation = {
      checkpoint: '/runs/x',
      dataset: { kind: 'builtin', split: 'test' },
      examples: { count: 8 },
      attacks: [{ attack: 'natural' }],
    };
    const expansion = expandSweep({ name: 'ev', kind: 'evaluate', base: evaluation, fromRuns: ['p1'] }, parents);
    if (!expansion.ok) throw new Error(expansion.issues.join('\n'));
    expect(expansion.runs.map((r) => [r.config.checkpoint, r.config.seed, r.parentRunId])).toEqual([
      ['/runs/p1', 1, 'p1'],
    ]);
    expect(
      issuesOf(expandSweep({ name: 'ev', kind: 'evaluate', base: evaluation, fromRuns: ['p9'] }, parents)),
    ).toEqual(['fromRuns: no finished run with a folder: p9.']);
    expect(issuesOf(expandSweep({ name: 'pt', base: BASE, fromRuns: ['p0'] }, parents))).toEqual([
      'fromRuns: a pre-training starts from no run',
    ]);
  });
});
