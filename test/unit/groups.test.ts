import { describe, expect, it } from 'vitest';
import {
  formatMeanStd,
  groupKey,
  groupRuns,
  meanStd,
  meanStdByStep,
  summaryStats,
  varyingPaths,
} from '../../src/shared/groups';

const run = (id: string, config: Record<string, unknown>, kind = 'pretrain', parentRunId: string | null = null) => ({
  id,
  kind,
  config,
  parentRunId,
});

describe('seed groups', () => {
  it('groups runs whose configs differ only by seed, whatever the key order', () => {
    const runs = [
      run('a0', { mode: 'mimir', mi: { lambda: 1e-5, sigma: 5 }, seed: 0 }),
      run('b0', { mode: 'mimir', mi: { lambda: 1e-3, sigma: 5 }, seed: 0 }),
      run('a1', { seed: 1, mi: { sigma: 5, lambda: 1e-5 }, mode: 'mimir' }),
      run('c0', { mode: 'mimir', mi: { lambda: 1e-5, sigma: 5 }, seed: 0 }, 'finetune'),
      run('a2', { mode: 'mimir', mi: { lambda: 1e-5, sigma: 5 }, seed: 2 }),
    ];
    expect(groupRuns(runs).map((g) => g.runs.map((r) => r.id))).toEqual([['a0', 'a1', 'a2'], ['b0'], ['c0']]);
  });

  it("groups fine-tunings of one group's pre-trainings by the parent's group, not its checkpoint path", () => {
    const parents = new Map([
      ['p0', run('p0', { mode: 'mimir', seed: 0 })],
      ['p1', run('p1', { mode: 'mimir', seed: 1 })],
      ['q0', run('q0', { mode: 'mae', seed: 0 })],
    ]);
    const ft = (id: string, parent: string, seed: number) =>
      run(
        id,
        { method: 'pgd-at', source: { kind: 'pretrained', checkpoint: `/runs/${parent}` }, seed },
        'finetune',
        parent,
      );
    const runs = [ft('f0', 'p0', 0), ft('f1', 'p1', 1), ft('g0', 'q0', 0)];
    const parentKeyOf = (id: string) => {
      const parent = parents.get(id);
      return parent ? groupKey(parent) : null;
    };
    expect(groupRuns(runs, parentKeyOf).map((g) => g.runs.map((r) => r.id))).toEqual([['f0', 'f1'], ['g0']]);
    // Without the parents' groups the different checkpoint paths keep them apart.
    expect(groupRuns(runs)).toHaveLength(3);
  });

  it('names the config paths that vary, seed aside', () => {
    expect(
      varyingPaths([
        { mode: 'mimir', mi: { lambda: 1e-5, sigma: 5 }, attack: { steps: 1 }, seed: 0 },
        { mode: 'mimir', mi: { lambda: 1e-3, sigma: 5 }, attack: { steps: 10 }, seed: 1 },
      ]),
    ).toEqual(['attack.steps', 'mi.lambda']);
  });
});

describe('mean ± std', () => {
  it('is the mean and the sample std (n - 1), leaving out missing and non-finite values', () => {
    // 0.86, 0.87, 0.85: mean 0.86, sample variance ((0)^2 + 0.01^2 + 0.01^2) / 2 = 1e-4, std 0.01.
    const stat = meanStd([0.86, null, 0.87, Number.NaN, 0.85, undefined]);
    expect(stat?.n).toBe(3);
    expect(stat?.mean).toBeCloseTo(0.86, 12);
    expect(stat?.std).toBeCloseTo(0.01, 12);
    expect(formatMeanStd(stat, { scale: 100, digits: 1 })).toBe('86.0 ± 1.0');
  });

  it('has no std for one value and is null for none', () => {
    expect(meanStd([0.5])).toEqual({ mean: 0.5, std: null, n: 1 });
    expect(formatMeanStd(meanStd([0.5]), { scale: 100 })).toBe('50.0');
    expect(meanStd([null, Number.POSITIVE_INFINITY])).toBeNull();
    expect(formatMeanStd(null)).toBe('–');
  });

  it('summarises every final metric the runs report', () => {
    const stats = summaryStats([{ summary: { loss: 1, acc: 0.5 } }, { summary: { loss: 3 } }, { summary: null }]);
    expect(stats.loss).toEqual({ mean: 2, std: Math.sqrt(2), n: 2 });
    expect(stats.acc).toEqual({ mean: 0.5, std: null, n: 1 });
  });
});

describe('meanStdByStep', () => {
  it('is the mean ± sample std of the runs at each step, over the runs that logged it', () => {
    const band = meanStdByStep([
      { steps: [0, 1, 2], values: [1, 2, 3] },
      { steps: [0, 1, 2, 3], values: [3, null, 5, 7] },
      { steps: [0, 2], values: [5, 4] },
    ]);
    // step 0: 1, 3, 5 -> mean 3, std 2; step 1: only 2; step 2: 3, 5, 4 -> mean 4, std 1; step 3: only 7.
    expect(band).toEqual([
      { step: 0, mean: 3, std: 2, n: 3 },
      { step: 1, mean: 2, std: null, n: 1 },
      { step: 2, mean: 4, std: 1, n: 3 },
      { step: 3, mean: 7, std: null, n: 1 },
    ]);
  });
});
