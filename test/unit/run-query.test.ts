import { describe, expect, it } from 'vitest';
import { matchesRunQuery, parseRunQuery } from '../../src/shared/run-query';
import type { Run } from '../../src/shared/store-types';

function run(id: string, config: Record<string, unknown>, extra: Partial<Run> = {}): Run {
  return {
    id,
    experimentId: 1,
    name: id,
    kind: 'pretrain',
    status: 'done',
    config,
    parentRunId: null,
    outDir: null,
    backend: null,
    pid: null,
    createdAt: 0,
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
    summary: null,
    tags: [],
    note: null,
    ...extra,
  };
}

const RUNS = [
  run('a', { mode: 'mimir', mi: { lambda: 1e-5 } }, { summary: { loss: 0.5 }, tags: ['paper'] }),
  run('b', { mode: 'mimir', mi: { lambda: 1e-3 } }, { summary: { loss: 0.7 } }),
  run('c', { mode: 'mae', mi: { lambda: 1e-5 } }),
  run('d', { method: 'pgd-at', epochs: 10 }, { kind: 'finetune' }),
];
const FIGURES: Record<string, { natural: number; robust: number } | null> = {
  a: { natural: 0.8, robust: 0.45 },
  b: { natural: 0.82, robust: 0.38 },
  c: null,
  d: { natural: 0.7, robust: 0.41 },
};

const ids = (text: string) => {
  const query = parseRunQuery(text);
  expect(query.errors).toEqual([]);
  return RUNS.filter((r) => matchesRunQuery(r, query, FIGURES[r.id] ?? null)).map((r) => r.id);
};

describe('structured run filters', () => {
  it('the issue example: mode=mimir lambda<1e-3 robust>0.4', () => {
    expect(ids('mode=mimir lambda<1e-3 robust>0.4')).toEqual(['a']);
  });

  it('compares numbers, matches text fields case-insensitively, reads percentages', () => {
    expect(ids('mode=MIMIR')).toEqual(['a', 'b']);
    expect(ids('mode!=mimir')).toEqual(['c', 'd']);
    expect(ids('lambda>=1e-5')).toEqual(['a', 'b', 'c']);
    expect(ids('natural>=80%')).toEqual(['a', 'b']);
    expect(ids('loss<0.6')).toEqual(['a']);
    expect(ids('kind=finetune epochs=10')).toEqual(['d']);
    expect(ids('tag=paper')).toEqual(['a']);
    expect(ids('config.mi.lambda=0.001')).toEqual(['b']);
  });

  it('a run without the value fails a comparison', () => {
    expect(ids('robust<1')).toEqual(['a', 'b', 'd']);
    expect(ids('summary.loss>0')).toEqual(['a', 'b']);
  });

  it('keeps other words as text and says what is wrong with a bad term', () => {
    expect(parseRunQuery('baseline mode=mae  cifar')).toMatchObject({ text: 'baseline cifar' });
    expect(parseRunQuery('lambda<small robust>').errors).toEqual([
      '"lambda<small": < compares numbers; "small" is not one',
      '"robust>": give a value after >, e.g. robust>0.5',
    ]);
  });
});
