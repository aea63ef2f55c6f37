import { describe, expect, it } from 'vitest';
import {
  groupTableRows,
  meanStdText,
  parentKeyFrom,
  type GroupRow,
} from '../../src/renderer/src/components/runs/group-rows';
import { seedlessName } from '../../src/shared/groups';
import type { RunFigures } from '../../src/shared/run-query';
import type { Run } from '../../src/shared/store-types';

let clock = 1000;
function run(
  id: string,
  config: Record<string, unknown>,
  loss: number | null,
  kind: Run['kind'] = 'pretrain',
  parentRunId: string | null = null,
): Run {
  return {
    id,
    experimentId: 1,
    name: `${id} · seed ${String(config.seed ?? 0)}`,
    kind,
    status: 'done',
    config,
    parentRunId,
    outDir: null,
    backend: null,
    pid: null,
    createdAt: clock++,
    startedAt: null,
    endedAt: null,
    lastEventAt: null,
    step: null,
    totalSteps: null,
    epoch: null,
    epochs: null,
    imagesPerSecond: null,
    etaSeconds: null,
    error: null,
    errorCause: null,
    lastCheckpoint: null,
    output: null,
    summary: loss === null ? null : { loss },
    tags: [],
    note: null,
  };
}

/** Mean and sample std in float64, written out independently of src/shared/groups. */
function reference(xs: number[]): { mean: number; std: number } {
  let sum = 0;
  for (const x of xs) sum += x;
  const mean = sum / xs.length;
  let squares = 0;
  for (const x of xs) squares += (x - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (xs.length - 1)) };
}

const low = (seed: number) => ({ mode: 'mimir', mi: { lambda: 1e-5 }, seed });
const high = (seed: number) => ({ mode: 'mimir', mi: { lambda: 1e-3 }, seed });

describe('the runs table grouped by seed', () => {
  const runs = [
    run('a0', low(0), 0.91),
    run('b0', high(0), 0.52),
    run('a1', low(1), 0.87),
    run('c', { mode: 'mae', seed: 0 }, null),
    run('a2', low(2), 0.95),
    run('b1', high(1), 0.61),
  ];
  const figures: Record<string, RunFigures | null> = {
    a0: { natural: 0.865, robust: 0.41 },
    a1: { natural: 0.868, robust: 0.42 },
    a2: { natural: 0.862, robust: null },
    b0: null,
    b1: { natural: 0.5, robust: 0.3 },
  };
  const byId = Object.fromEntries(runs.map((r) => [r.id, r]));

  it('collapses each group of two or more into one row with mean ± sample std and n per column', () => {
    const rows = groupTableRows(runs, figures, { key: 'createdAt', direction: 'desc' }, parentKeyFrom(byId));
    expect(rows.map((r) => (r.type === 'group' ? r.runs.map((m) => m.id).join('+') : r.run.id))).toEqual([
      'a0+a1+a2',
      'b0+b1',
      'c',
    ]);
    const a = rows[0] as GroupRow;
    expect(a.name).toBe('a0');
    const loss = reference([0.91, 0.87, 0.95]);
    expect(a.stats.loss?.mean).toBeCloseTo(loss.mean, 14);
    expect(a.stats.loss?.std).toBeCloseTo(loss.std, 14);
    expect(a.stats.loss?.n).toBe(3);
    const natural = reference([0.865, 0.868, 0.862]);
    expect(a.stats.natural?.mean).toBeCloseTo(natural.mean, 14);
    expect(a.stats.natural?.std).toBeCloseTo(natural.std, 14);
    // a2 has no robust figure: the mean is over the two that have one.
    expect(a.stats.robust?.n).toBe(2);
    expect(a.stats.mi).toBeNull();
    // b0 has no evaluation: b's natural is b1's alone, without a std.
    expect((rows[1] as GroupRow).stats.natural).toEqual({ mean: 0.5, std: null, n: 1 });
  });

  it('writes accuracies as the paper does ("86.5 ± 0.3", in percent) and other numbers to 4 significant digits', () => {
    const rows = groupTableRows(runs, figures, { key: 'createdAt', direction: 'desc' }, parentKeyFrom(byId));
    const a = rows[0] as GroupRow;
    expect(meanStdText(a.stats.natural, 'natural')).toBe('86.5 ± 0.3');
    expect(meanStdText(a.stats.loss, 'loss')).toBe('0.91 ± 0.04');
    expect(meanStdText({ mean: 1.23456, std: 0.0123456, n: 2 }, 'loss')).toBe('1.235 ± 0.01235');
    expect(meanStdText(null, 'mi')).toBe('–');
  });

  it('sorts group rows by their mean, missing values last in either direction', () => {
    const order = (direction: 'asc' | 'desc') =>
      groupTableRows(runs, figures, { key: 'loss', direction }, parentKeyFrom(byId)).map((r) =>
        r.type === 'group' ? r.runs[0]?.id : r.run.id,
      );
    expect(order('desc')).toEqual(['a0', 'b0', 'c']);
    expect(order('asc')).toEqual(['b0', 'a0', 'c']);
    const robust = groupTableRows(runs, figures, { key: 'robust', direction: 'desc' }, parentKeyFrom(byId));
    expect(robust.map((r) => (r.type === 'group' ? r.runs[0]?.id : r.run.id))).toEqual(['a0', 'b0', 'c']);
  });

  it('groups what the filter kept: a filtered-out seed is not in its group', () => {
    const kept = runs.filter((r) => r.id !== 'a2');
    const rows = groupTableRows(kept, figures, { key: 'createdAt', direction: 'desc' }, parentKeyFrom(byId));
    const a = rows[0] as GroupRow;
    expect(a.runs.map((r) => r.id)).toEqual(['a0', 'a1']);
    expect(a.stats.loss?.mean).toBeCloseTo((0.91 + 0.87) / 2, 14);
    // A group cut down to one run is a plain run row.
    const single = groupTableRows(
      runs.slice(1, 2),
      figures,
      { key: 'createdAt', direction: 'desc' },
      parentKeyFrom(byId),
    );
    expect(single).toEqual([{ type: 'run', run: runs[1] }]);
  });

  it("groups fine-tunings of one pre-training group's seeds, whose checkpoint paths differ", () => {
    const tune = (id: string, parent: string, seed: number, loss: number) =>
      run(
        id,
        { method: 'pgd-at', source: { kind: 'pretrained', checkpoint: `/runs/${parent}/ckpt` }, seed },
        loss,
        'finetune',
        parent,
      );
    const tunes = [tune('f0', 'a0', 0, 1.2), tune('f1', 'a1', 1, 1.4), tune('g0', 'b0', 0, 2)];
    const rows = groupTableRows(tunes, {}, { key: 'createdAt', direction: 'desc' }, parentKeyFrom(byId));
    expect(rows.map((r) => (r.type === 'group' ? r.runs.map((m) => m.id).join('+') : r.run.id))).toEqual([
      'f0+f1',
      'g0',
    ]);
  });
});

describe('a group name', () => {
  it("is the run's name without the seed a sweep appends", () => {
    expect(seedlessName('mimir lambda 1e-3 · seed 12')).toBe('mimir lambda 1e-3');
    expect(seedlessName('seed study')).toBe('seed study');
  });
});
