import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EvaluationReport } from '../../src/shared/evaluation';
import { spawnSync } from 'node:child_process';
import { ROOT, requireBuilt } from '../helpers/build';
import { runMimir } from '../helpers/cli';
import { useBackend } from '../helpers/backend';
import { disposeParams } from '../../src/engine/model';
import { cachedTrainedClassifier, trainedClassifierCheckpoint } from '../engine/export/fixtures';

/** runMimir with room for AutoAttack's standard budgets on a slow machine. */
function runLong(args: string[]) {
  requireBuilt('main/cli.js');
  return spawnSync(process.execPath, [path.join(ROOT, 'bin/mimir.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 600_000,
  });
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-eval-'));

describe('mimir eval', () => {
  let model: string;

  beforeAll(async () => {
    await useBackend('wasm');
    model = (await cachedTrainedClassifier({ classes: 4, steps: 150 })).runDir;
  }, 300_000);

  it('runs natural, PGD-20, AutoAttack, CW, PGD-MI, PGD-fea and corruptions and prints the table', () => {
    const out = tmp();
    const run = runLong([
      'eval',
      '--model',
      model,
      '--attacks',
      'natural,pgd20,autoattack,cw,pgd-mi,pgd-fea,corruptions',
      '--eps',
      '8',
      '--n',
      '8',
      '--batch',
      '8',
      '--seed',
      '1',
      '--out',
      out,
      '--backend',
      'wasm',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const stdout = run.stdout;
    console.log(stdout);
    for (const label of [
      'Natural',
      'PGD-20',
      'AutoAttack (standard)',
      'CW-l2 (c = 1)',
      'CW-linf (PGD-20)',
      'PGD-MI-100',
      'PGD-fea-100',
      'Worst case (per point)',
    ]) {
      expect(stdout).toContain(label);
    }
    expect(stdout).toMatch(
      /PGD-20\s+\d+\.\d\d%\s+linf, eps 8\/255, 20 steps, 1 restart, best iterate per example, seed 1, n 8, pgd\/1/,
    );
    expect(stdout).toContain('Common corruptions (cifar10 severities)');
    expect(stdout).toContain(`Report: ${path.join(out, 'report.json')}`);

    const report = EvaluationReport.parse(JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')));
    // The model's own dataset (built-in, 4 classes, 16 px), test split, first 8 examples.
    expect(report.dataset).toMatchObject({ kind: 'builtin', split: 'test' });
    expect(report.examples.ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const aa = report.attacks.find((a) => a.key === 'autoattack');
    if (!aa?.record || !('stages' in aa.record)) throw new Error('no AutoAttack record');
    for (const stage of aa.record.stages) expect(aa.robustAccuracy).toBeLessThanOrEqual(stage.robustAccuracy);
    for (const a of report.attacks) {
      expect(a.protocol).toMatchObject({ seed: 1, examples: { count: 8, ids: report.examples.ids } });
      if (a.key !== 'natural' && a.key !== 'cw-l2') expect(a.protocol).toMatchObject({ threat: 'linf', eps255: 8 });
      for (const f of a.flipped.listed) expect(f.adversarialPrediction).not.toBe(f.label);
      if (a.flipped.images) {
        for (const file of [a.flipped.images.clean, a.flipped.images.adversarial, a.flipped.images.perturbation]) {
          expect(existsSync(path.join(out, 'flipped', file)), file).toBe(true);
        }
      }
    }
    const flipped = report.attacks.reduce((s, a) => s + a.flipped.count, 0);
    expect(flipped).toBeGreaterThan(0);
    expect(report.worstCase?.robustAccuracy).toBeLessThanOrEqual(aa.robustAccuracy);
  }, 600_000);

  it('flags a collapsed model above the table, and counts the last PGD iterate with --pgd-keep last', async () => {
    // A zero head scores every class alike: at chance, and no attack can flip it.
    const made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, headInitStd: 0 });
    disposeParams(made.params);
    const out = tmp();
    const run = runMimir([
      'eval',
      '--model',
      made.path,
      '--attacks',
      'natural,pgd:5',
      '--pgd-keep',
      'last',
      '--n',
      '40',
      '--no-masking-checks',
      '--out',
      out,
    ]);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    const chance = lines.findIndex((l) => l.startsWith('!! No evidence of robustness: the model is at chance.'));
    const flipped = lines.findIndex((l) =>
      l.startsWith('!! No evidence of robustness: no attack flipped a single example.'),
    );
    const header = lines.findIndex((l) => /^attack\s+robust accuracy\s+protocol/.test(l));
    expect(chance).toBeGreaterThan(0);
    expect(flipped).toBeGreaterThan(chance);
    expect(header).toBeGreaterThan(flipped);
    expect(run.stdout).toMatch(
      /PGD-5\s+25\.00%\s+linf, eps 8\/255, 5 steps, 1 restart, last iterate \(torchattacks\), seed 0/,
    );
    const report = EvaluationReport.parse(JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')));
    expect(report.noEvidence.map((f) => f.kind)).toEqual(['at-chance', 'nothing-flipped']);
    expect(report.attacks[1]?.record?.spec).toMatchObject({ attack: 'pgd', keep: 'last' });

    const bad = runMimir(['eval', '--model', made.path, '--pgd-keep', 'first', '--out', tmp()]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--pgd-keep.*Allowed choices are best, last/s);
  });

  it('prints the report as JSON, and refuses an unknown attack', () => {
    const run = runMimir([
      'eval',
      '--model',
      model,
      '--attacks',
      'natural,pgd:5',
      '--n',
      '4',
      '--out',
      tmp(),
      '--json',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const report = EvaluationReport.parse(JSON.parse(run.stdout));
    expect(report.attacks.map((a) => a.key)).toEqual(['natural', 'pgd5']);
    expect(report.attacks[1]?.protocol.steps).toBe(5);

    const bad = runMimir(['eval', '--model', model, '--attacks', 'natural,fgsm', '--out', tmp(), '--json']);
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({
      type: 'failed',
      message: expect.stringContaining('unknown attack "fgsm"'),
    });
  });

  it('says what is wrong with a bad request in one line, not as zod JSON', () => {
    const json = runMimir(['eval', '--model', model, '--n', '0', '--out', tmp(), '--json']);
    expect(json.status).toBe(1);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toEqual({
      type: 'failed',
      message: 'Invalid evaluation request: examples.count: n must be at least 1',
      step: null,
      lastCheckpoint: null,
    });
    const human = runMimir(['eval', '--model', model, '--n', '0', '--out', tmp()]);
    expect(human.status).toBe(1);
    expect(human.stderr).toBe('mimir: Invalid evaluation request: examples.count: n must be at least 1\n');
  });

  it('--ids evaluates exactly the example ids a file lists, and says what is wrong with a bad list', () => {
    const dir = tmp();
    const file = path.join(dir, 'ids.txt');
    writeFileSync(file, '12, 3\n40\n');
    const run = runMimir(['eval', '--model', model, '--attacks', 'natural', '--ids', file, '--out', tmp(), '--json']);
    expect(run.status, run.stderr).toBe(0);
    const report = EvaluationReport.parse(JSON.parse(run.stdout));
    expect(report.examples).toMatchObject({ count: 3, ids: [12, 3, 40], pick: 'ids' });

    writeFileSync(file, '[1, 2.5]');
    const bad = runMimir(['eval', '--model', model, '--attacks', 'natural', '--ids', file, '--out', tmp(), '--json']);
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({
      type: 'failed',
      message: expect.stringContaining(
        'expected whole numbers >= 0 (a JSON array, or separated by commas or white space); item 2 is "2.5"',
      ),
    });
  });
});
