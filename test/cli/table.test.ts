import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store';
import { runMimir } from '../helpers/cli';
import { FIGURES, reference, seedTableStore } from '../helpers/table-store';

const pct = (x: number) => (x * 100).toFixed(2);
const cell = (values: number[]) => {
  const { mean, std } = reference(values);
  return `${pct(mean)} ± ${pct(std)}`;
};

describe('mimir table', () => {
  let dir: string;
  let ids: string[];

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-table-'));
    const store = RunStore.open(path.join(dir, 'mimir.db'));
    ids = seedTableStore(store, FIGURES).map((run) => run.id);
    store.close();
  });

  const table = (...args: string[]) =>
    runMimir([
      'table',
      '--runs',
      ids.join(','),
      '--data-dir',
      dir,
      '--columns',
      'natural,pgd20,autoattack,robust',
      ...args,
    ]);

  it('--group --format markdown: mean ± sample std over each seed group equal the stored latest evaluations', () => {
    const result = table('--group', '--format', 'markdown');
    expect(result.status, result.stderr).toBe(0);
    const a = FIGURES.slice(0, 3);
    const b = FIGURES.slice(3);
    const row = (label: string, group: typeof FIGURES) =>
      `| ${label} | ${group.length} | ${cell(group.map((f) => f.natural))} | ${cell(group.map((f) => f.pgd20))} | ${cell(
        group.map((f) => f.autoattack),
      )} | ${cell(group.map((f) => f.worst))} |`;
    expect(result.stdout.trim().split('\n')).toEqual([
      '| Run | n | Natural | PGD-20 | AutoAttack (standard) | Worst case |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      row('pretrain.mi.lambda=0.00001', a),
      row('pretrain.mi.lambda=0.001', b),
    ]);
    // The first group's natural accuracy by hand: 87.1, 86.4, 86.8 -> 86.77 ± 0.35.
    expect(result.stdout).toContain('| 3 | 86.77 ± 0.35 |');
  });

  it('--group --format latex writes the same numbers in a booktabs tabular', () => {
    const result = table('--group', '--format', 'latex', '--digits', '1');
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.slice(0, 5)).toEqual([
      '% needs \\usepackage{booktabs}',
      '\\begin{tabular}{lrrrrr}',
      '\\toprule',
      'Run & n & Natural & PGD-20 & AutoAttack (standard) & Worst case \\\\',
      '\\midrule',
    ]);
    const one = (values: number[]) => {
      const { mean, std } = reference(values);
      return `${(mean * 100).toFixed(1)} $\\pm$ ${(std * 100).toFixed(1)}`;
    };
    const b = FIGURES.slice(3);
    expect(lines[6]).toBe(
      `pretrain.mi.lambda=0.001 & 2 & ${one(b.map((f) => f.natural))} & ${one(b.map((f) => f.pgd20))} & ${one(
        b.map((f) => f.autoattack),
      )} & ${one(b.map((f) => f.worst))} \\\\`,
    );
    expect(lines.slice(-2)).toEqual(['\\bottomrule', '\\end{tabular}']);
  });

  it('without --group: one row per run; CSV to a file', () => {
    const file = path.join(dir, 'table.csv');
    const result = table('--format', 'csv', '--out', file);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe('');
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('run,natural,pgd20,autoattack,robust');
    expect(lines.slice(1).map((line) => line.split(',').slice(1))).toEqual(
      FIGURES.map((f) => [pct(f.natural), pct(f.pgd20), pct(f.autoattack), pct(f.worst)]),
    );
  });

  it('takes a standard attack no picked run was evaluated with, leaving its cells empty', () => {
    const result = runMimir(['table', '--runs', ids.join(','), '--data-dir', dir, '--columns', 'natural,square']);
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe('| Run | Natural | square |');
    expect(lines.slice(2).map((line) => line.split('|').at(-2)?.trim())).toEqual(FIGURES.map(() => '–'));
  });

  it('refuses an unknown column and an unknown run, saying what exists', () => {
    const column = table('--columns', 'natural,pgd21');
    expect(column.status).toBe(1);
    expect(column.stderr).toContain('unknown column "pgd21"');
    expect(column.stderr).toContain('autoattack');
    const run = runMimir(['table', '--runs', 'zzzzzz', '--data-dir', dir]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('No run has an id starting with "zzzzzz"');
    const store = runMimir(['table', '--runs', ids[0] ?? '', '--data-dir', path.join(dir, 'nothing')]);
    expect(store.stderr).toContain('There is no experiment store at');
  });
});
