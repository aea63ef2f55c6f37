import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { BuiltinDataset } from '../../../src/engine/data';
import { evaluate, EvaluationCancelledError, selectExamples } from '../../../src/engine/evaluate';
import { loadClassifierCheckpoint } from '../../../src/engine/finetune';
import { disposeParams } from '../../../src/engine/model';
import { BuiltinSource } from '../../../src/shared/dataset-config';
import { EvaluationReport, type EvaluationRequestInput } from '../../../src/shared/evaluation';
import type { RunEvent } from '../../../src/shared/run-events';
import { useBackend } from '../../helpers/backend';
import { cachedTrainedClassifier, trainedClassifierCheckpoint } from '../export/fixtures';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-evaluate-'));
const DATASET = { kind: 'builtin', split: 'test', imageSize: 16, classes: 4, size: 200 } as const;

describe('evaluate', () => {
  let checkpoint: string;

  beforeAll(async () => {
    await useBackend('wasm');
    checkpoint = (await cachedTrainedClassifier({ classes: 4, steps: 150 })).runDir;
  }, 300_000);

  it('runs natural, PGD-20, AutoAttack, APGD-CE, CW, PGD-MI, PGD-fea and corruptions with every protocol recorded', async () => {
    const outDir = tmp();
    const events: RunEvent[] = [];
    const request: EvaluationRequestInput = {
      checkpoint,
      dataset: DATASET,
      examples: { count: 8 },
      attacks: [
        { attack: 'natural' },
        { attack: 'pgd20' },
        { attack: 'autoattack' },
        { attack: 'apgd-ce' },
        { attack: 'cw' },
        { attack: 'pgd-mi' },
        { attack: 'pgd-fea' },
        { attack: 'corruptions' },
      ],
      eps: 8,
      seed: 3,
      batchSize: 8,
      flipped: { list: 5, images: 3 },
    };
    const t0 = performance.now();
    const report = await evaluate(request, { outDir, emit: (e) => events.push(e) });
    const seconds = (performance.now() - t0) / 1000;
    expect(EvaluationReport.parse(JSON.parse(readFileSync(path.join(outDir, 'report.json'), 'utf8')))).toEqual(report);

    // Natural accuracy, independently.
    const model = await loadClassifierCheckpoint(checkpoint);
    const data = await new BuiltinDataset(BuiltinSource.parse(DATASET)).get(report.examples.ids);
    const x = tf.tensor4d(data.images, [8, 16, 16, 3]);
    const scores = model.predict(x);
    const pred = await tf.argMax(scores, 1).data();
    const natural = Array.from(data.labels).filter((l, i) => pred[i] === l).length / 8;
    tf.dispose([x, scores]);
    model.dispose();
    expect(report.naturalAccuracy).toBe(natural);
    expect(report.examples.ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    const byKey = Object.fromEntries(report.attacks.map((a) => [a.key, a]));
    expect(Object.keys(byKey)).toEqual([
      'natural',
      'pgd20',
      'autoattack',
      'apgd-ce',
      'cw-l2',
      'cw-linf',
      'pgd-mi',
      'pgd-fea',
    ]);
    const table = report.attacks.map(
      (a) => `${a.label}: ${(a.robustAccuracy * 100).toFixed(1)}% (flipped ${a.flipped.count})`,
    );
    console.log(`evaluation of 8 examples in ${seconds.toFixed(1)} s on wasm:\n  ${table.join('\n  ')}`);
    console.log('worst case', report.worstCase?.robustAccuracy, 'corruption mean', report.corruptions?.mean);
    expect(byKey.natural?.robustAccuracy).toBe(natural);

    // Every number's protocol.
    for (const a of report.attacks) {
      expect(a.protocol.seed).toBe(3);
      expect(a.protocol.examples.ids).toEqual(report.examples.ids);
      expect(a.protocol.backend).toBe('wasm');
      expect(a.protocol.implementation).toMatch(/\/\d+$/);
      expect(a.cleanAccuracy).toBe(natural);
      expect(a.robustAccuracy).toBeLessThanOrEqual(natural);
    }
    expect(byKey.pgd20?.protocol).toMatchObject({
      threat: 'linf',
      eps: 8 / 255,
      eps255: 8,
      steps: 20,
      restarts: 1,
      attack: 'PGD-20',
    });
    expect(byKey.pgd20?.record?.spec).toMatchObject({ attack: 'pgd', alpha: 2 / 255, randomStart: true, keep: 'best' });
    // The protocol says which iterate PGD-k counted; non-PGD attacks have none.
    expect(byKey.pgd20?.protocol.iterate).toBe('best');
    expect(byKey['pgd-fea']?.protocol.iterate).toBe('best');
    expect(byKey.autoattack?.protocol.iterate).toBeNull();
    expect(byKey.natural?.protocol.iterate).toBeNull();
    expect(byKey['pgd-mi']?.protocol).toMatchObject({ steps: 100 });
    expect(byKey['pgd-mi']?.record?.spec).toMatchObject({ attack: 'pgd-mi', lambda: 1e-5, estimator: 'nhsic' });
    expect(byKey['pgd-fea']?.protocol).toMatchObject({ steps: 100 });
    expect(byKey['cw-linf']?.record?.spec).toMatchObject({ attack: 'pgd', loss: 'margin' });
    expect(byKey['cw-l2']?.protocol).toMatchObject({ threat: 'l2', eps: null, inWorstCase: false });
    expect(byKey.autoattack?.record?.spec).toMatchObject({ attack: 'autoattack', version: 'standard' });

    // AutoAttack's worst case is no better than any of its parts, nor than APGD-CE run alone.
    const aa = byKey.autoattack;
    if (!aa?.record || !('stages' in aa.record)) throw new Error('AutoAttack has no stages');
    const stages = aa.record.stages;
    expect(stages.map((s) => s.attack)).toEqual(['apgd-ce', 'apgd-t', 'fab-t', 'square']);
    for (const s of stages) expect(aa.robustAccuracy).toBeLessThanOrEqual(s.robustAccuracy);
    expect(aa.robustAccuracy).toBeLessThanOrEqual(byKey['apgd-ce']?.robustAccuracy ?? 0);
    expect(stages[0]?.robustAccuracy).toBe(byKey['apgd-ce']?.robustAccuracy);

    // The per-point worst case over the attacks within the threat model.
    const worst = report.worstCase;
    if (!worst) throw new Error('no worst case');
    expect(worst.attacks).toEqual(['pgd20', 'autoattack', 'apgd-ce', 'cw-linf', 'pgd-mi', 'pgd-fea']);
    for (const key of worst.attacks) expect(worst.robustAccuracy).toBeLessThanOrEqual(byKey[key]?.robustAccuracy ?? 0);
    const robustUnder = (key: string, i: number): boolean => {
      const record = byKey[key]?.record;
      if (!record) throw new Error(`${key} has no record`);
      return 'stages' in record ? record.brokenBy[i] === null : record.perExample?.robust[i] === true;
    };
    report.examples.ids.forEach((_, i) => {
      const expected = pred[i] !== data.labels[i] ? 'clean' : (worst.attacks.find((k) => !robustUnder(k, i)) ?? null);
      expect(worst.brokenBy[i]).toBe(expected);
    });

    // Flipped examples: counted, listed (bounded) and shown.
    for (const a of report.attacks) {
      expect(a.flipped.listed.length).toBe(Math.min(5, a.flipped.count));
      for (const f of a.flipped.listed) {
        expect(f.cleanPrediction).toBe(f.label);
        expect(f.adversarialPrediction).not.toBe(f.label);
        expect(report.examples.ids).toContain(f.index);
      }
      if (a.flipped.count === 0) expect(a.flipped.images).toBeNull();
      else {
        const images = a.flipped.images;
        if (!images) throw new Error(`${a.key} flipped examples without images`);
        expect(images.indices).toHaveLength(Math.min(3, a.flipped.count));
        for (const file of [images.clean, images.adversarial, images.perturbation]) {
          const meta = await sharp(path.join(outDir, 'flipped', file)).metadata();
          expect([meta.width, meta.height]).toEqual([16 * images.indices.length, 16]);
        }
      }
    }
    expect(byKey.pgd20?.flipped.count).toBeGreaterThan(0);

    // Corruptions: every type and severity, on the same examples.
    expect(report.corruptions?.table).toBe('cifar10');
    expect(report.corruptions?.cells).toHaveLength(45);
    expect(report.corruptions?.examples.ids).toEqual(report.examples.ids);

    // Masking checks on the first batch; events: started, progress to the end, done naming the report.
    expect(report.masking?.zeroGradient?.total).toBe(8);
    expect(report.masking?.randomness?.flagged).toBe(false);
    expect(events[0]?.type).toBe('started');
    const last = events.at(-1);
    expect(last).toMatchObject({ type: 'done', output: { kind: 'report', path: path.join(outDir, 'report.json') } });
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.at(-1)).toMatchObject({ step: progress.at(-1)?.totalSteps });
    expect(existsSync(path.join(outDir, 'report.json'))).toBe(true);
  }, 600_000);

  it('flags a model at chance, and an evaluation in which no attack flipped anything, as no evidence of robustness', async () => {
    // A collapsed classifier: a zero head gives every class the same score, so it is at chance on 4 classes.
    const collapsed = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, headInitStd: 0 });
    disposeParams(collapsed.params);
    const untrained = collapsed.path;
    const events: RunEvent[] = [];
    const atChance = await evaluate(
      {
        checkpoint: untrained,
        dataset: DATASET,
        examples: { count: 40 },
        attacks: [{ attack: 'natural' }, { attack: 'pgd20', keep: 'last' }],
        maskingChecks: false,
      },
      { outDir: tmp(), emit: (e) => events.push(e) },
    );
    console.log(`collapsed: natural ${atChance.naturalAccuracy}`);
    expect(Math.abs(atChance.naturalAccuracy - 0.25)).toBeLessThanOrEqual(0.02);
    expect(atChance.noEvidence.map((f) => f.kind)).toContain('at-chance');
    const flag = atChance.noEvidence.find((f) => f.kind === 'at-chance');
    expect(flag?.message).toMatch(/^No evidence of robustness: the model is at chance\. Natural accuracy 2\d\.\d\d% /);
    expect(flag?.message).toContain('1/4 = 25.00%');
    expect(events).toContainEqual({ type: 'log', level: 'warn', message: flag?.message });
    // PGD-k's 'last' (torchattacks) protocol, recorded and run.
    expect(atChance.attacks[1]?.protocol.iterate).toBe('last');
    expect(atChance.attacks[1]?.record?.spec).toMatchObject({ attack: 'pgd', keep: 'last' });

    // The trained model under a radius far too small to flip anything: robust = clean, zero flipped.
    const tiny = await evaluate(
      {
        checkpoint,
        dataset: DATASET,
        examples: { count: 16 },
        attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
        eps: 0.001,
        maskingChecks: false,
      },
      { outDir: tmp() },
    );
    console.log(`trained at eps 0.001/255: natural ${tiny.naturalAccuracy}, pgd20 ${tiny.attacks[1]?.robustAccuracy}`);
    expect(tiny.naturalAccuracy).toBeGreaterThan(0.25 + 0.02);
    expect(tiny.attacks[1]?.flipped.count).toBe(0);
    expect(tiny.noEvidence.map((f) => f.kind)).toEqual(['nothing-flipped']);
    expect(tiny.noEvidence[0]?.message).toMatch(
      /^No evidence of robustness: no attack flipped a single example\. Under PGD-20, robust accuracy equals clean accuracy \(\d+\.\d\d%\)/,
    );

    // A real attack on the trained model flips some: nothing to flag.
    const real = await evaluate(
      { checkpoint, dataset: DATASET, examples: { count: 16 }, attacks: [{ attack: 'pgd20' }], maskingChecks: false },
      { outDir: tmp() },
    );
    expect(real.attacks[0]?.flipped.count).toBeGreaterThan(0);
    expect(real.noEvidence).toEqual([]);
  }, 300_000);

  it('evaluates exactly a given list of example ids, recorded in the report', async () => {
    const ids = [150, 3, 77, 41];
    const report = await evaluate(
      {
        checkpoint,
        dataset: DATASET,
        examples: { count: 4, pick: 'ids', ids },
        attacks: [{ attack: 'natural' }],
        maskingChecks: false,
      },
      { outDir: tmp() },
    );
    expect(report.examples).toMatchObject({ count: 4, ids, pick: 'ids' });
    // The same examples one by one: the accuracy over the list is the mean of theirs.
    let correct = 0;
    for (const id of ids) {
      const one = await evaluate(
        {
          checkpoint,
          dataset: DATASET,
          examples: { count: 1, pick: 'ids', ids: [id] },
          attacks: [{ attack: 'natural' }],
          maskingChecks: false,
        },
        { outDir: tmp() },
      );
      correct += one.naturalAccuracy;
    }
    expect(report.naturalAccuracy).toBeCloseTo(correct / ids.length, 12);
    await expect(
      evaluate(
        {
          checkpoint,
          dataset: DATASET,
          examples: { count: 1, pick: 'ids', ids: [200] },
          attacks: [{ attack: 'natural' }],
        },
        { outDir: tmp() },
      ),
    ).rejects.toThrow('examples.ids: 200 is past the end of the split (200 examples, ids 0 to 199).');
  }, 300_000);

  it('gives each example the same result whatever the batch, and samples examples with the seed', async () => {
    const base = {
      checkpoint,
      dataset: DATASET,
      attacks: [{ attack: 'pgd20' as const }],
      maskingChecks: false,
      seed: 5,
    };
    const whole = await evaluate({ ...base, examples: { count: 6, pick: 'random' }, batchSize: 6 }, { outDir: tmp() });
    const split = await evaluate({ ...base, examples: { count: 6, pick: 'random' }, batchSize: 4 }, { outDir: tmp() });
    expect(whole.examples.ids).toEqual(selectExamples(200, 6, 'random', 5));
    expect(new Set(whole.examples.ids).size).toBe(6);
    expect(whole.examples.ids).toEqual([...whole.examples.ids].sort((a, b) => a - b));
    const a = whole.attacks[0]?.record;
    const b = split.attacks[0]?.record;
    expect(a && 'perExample' in a ? a.perExample?.robust : null).toEqual(
      b && 'perExample' in b ? b.perExample?.robust : 1,
    );
    expect(whole.attacks[0]?.robustAccuracy).toBe(split.attacks[0]?.robustAccuracy);
  });

  it('gives each warning of the report its kind, kept through report.json', async () => {
    const outDir = tmp();
    const report = await evaluate(
      {
        checkpoint,
        dataset: DATASET,
        examples: { count: 4 },
        // Under l_inf, CW-l2 counts flips at any distance; PGD-MI's MI term is a batch statistic.
        attacks: [
          { attack: 'cw', norm: 'l2', steps: 2 },
          { attack: 'pgd-mi', steps: 2 },
        ],
        maskingChecks: false,
      },
      { outDir },
    );
    const kinds = Object.fromEntries(report.attacks.map((a) => [a.key, a.warnings.map((w) => w.kind)]));
    expect(kinds).toEqual({ 'cw-l2': ['cw-unbounded'], 'pgd-mi': ['batch-statistic'] });
    expect(report.attacks[0]?.warnings[0]?.message).toContain('CW-l2 is unbounded here');
    const stored = JSON.parse(readFileSync(path.join(outDir, 'report.json'), 'utf8')) as EvaluationReport;
    expect(stored.attacks.map((a) => a.warnings)).toEqual(report.attacks.map((a) => a.warnings));
  });

  it('stops on cancel, and fails clearly on a dataset the model cannot take', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      evaluate(
        { checkpoint, dataset: DATASET, examples: { count: 4 }, attacks: [{ attack: 'pgd20' }] },
        { outDir: tmp(), signal: controller.signal },
      ),
    ).rejects.toBeInstanceOf(EvaluationCancelledError);
    const events: RunEvent[] = [];
    await expect(
      evaluate(
        {
          checkpoint,
          dataset: { ...DATASET, imageSize: 32 },
          examples: { count: 4 },
          attacks: [{ attack: 'natural' }],
        },
        { outDir: tmp(), emit: (e) => events.push(e) },
      ),
    ).rejects.toThrow(/16 px images; the dataset has 32 px/);
    expect(events.at(-1)).toMatchObject({ type: 'failed' });
  });
});
