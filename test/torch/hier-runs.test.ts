import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { corruptImages } from '../../src/engine/corruptions';
import { openDataset } from '../../src/engine/data';
import { writeNpy } from '../../src/engine/io/npy';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { CORRUPTION_TYPES, EvaluationReport } from '../../src/shared/evaluation';
import { events, runMimir } from '../helpers/cli';
import { findPythonWithTorch, runPython, type PythonWithTorch } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * Issue 18 through `mimir pretrain|finetune --engine torch`: a micro ConvNeXt (SparK) and a micro Swin
 * (GreenMIM) run MIMIR pre-training to done, their checkpoints hold the encoder under timm's names,
 * PGD-AT fine-tunes from them and `mimir eval` evaluates the result on the PyTorch engine (natural, PGD and
 * the common corruptions); the tfjs engine refuses to train them, naming the PyTorch engine.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-hier-'));
const THREADS = { OMP_NUM_THREADS: '1' };
const DATA = ['--image-size', '32', '--dataset-size', '16', '--batch', '8'];

function configFile(dir: string, config: object): string {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** The tensor names in the checkpoint a run's done event names. */
function checkpointNames(list: ReturnType<typeof events>): string[] {
  const done = list.at(-1);
  const output = done?.type === 'done' ? done.output : null;
  if (output?.kind !== 'checkpoint') throw new Error('the run ended without a checkpoint');
  const file = readdirSync(output.path).find((f) => f.endsWith('.safetensors')) ?? '';
  return [...decodeSafetensors(new Uint8Array(readFileSync(path.join(output.path, file)))).tensors.keys()];
}

/** PNG width and height, from its IHDR chunk. */
function pngSize(file: string): [number, number] {
  const bytes = readFileSync(file);
  expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

/**
 * The torch report's gradient-masking checks (those it runs: not the black-box one, which needs Square) on
 * the first batch, their warnings next to every PGD number, and each attack's flipped examples as PNG strips.
 */
function expectMaskingAndImages(report: EvaluationReport, dir: string): void {
  const masking = report.masking;
  if (!masking) throw new Error('the torch report has no gradient-masking checks');
  expect(masking.examples.ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  expect(masking.blackBoxBelowWhiteBox).toBeUndefined();
  expect(masking.zeroGradient).toMatchObject({ total: 8, count: 0, flagged: false });
  // The evaluated classifier is deterministic.
  expect(masking.randomness).toMatchObject({ repeats: 5, predictionsChanged: false, flagged: false });
  const unbounded = masking.unboundedEps;
  expect(unbounded?.eps).toBe(1);
  expect(unbounded?.flagged).toBe((unbounded?.accuracy ?? 1) > 0.01);
  expect(masking.warnings.map((w) => w.kind)).toEqual(unbounded?.flagged ? ['unbounded-eps'] : []);
  for (const a of report.attacks) expect(a.warnings).toEqual(a.key === 'natural' ? [] : masking.warnings);
  // Whether PGD flips any of these 8 examples varies between runs (the pre-training's initialisation is not
  // seeded): images are written exactly where examples were flipped (tests/test_evaluate_pgd.py checks their pixels).
  for (const a of report.attacks) {
    const images = a.flipped.images;
    if (a.flipped.count === 0 || a.key === 'natural') {
      expect(images).toBeNull();
      continue;
    }
    if (!images) throw new Error(`${a.key} flipped ${a.flipped.count} examples but wrote no images`);
    expect(images.indices).toEqual(a.flipped.listed.slice(0, 8).map((f) => f.index));
    expect(images.imageSize).toBe(32);
    expect(images.perturbationScale).toBeCloseTo(0.5 / (8 / 255), 6);
    for (const file of [images.clean, images.adversarial, images.perturbation]) {
      expect(pngSize(path.join(dir, 'flipped', file))).toEqual([32 * images.indices.length, 32]);
    }
  }
}

/**
 * The report's corruption table against the checkpoint's accuracy on the same corrupted images computed apart
 * from the evaluation: each (type, severity) batch corrupted here with corruptImages (the CIFAR-10-C table,
 * the request's seed, the split indices as ids), written as .npy, and classified by the model in Python.
 */
async function expectCorruptionTable(report: EvaluationReport, python: PythonWithTorch): Promise<void> {
  const table = report.corruptions;
  if (!table) throw new Error('the torch report has no corruption table');
  const cells = CORRUPTION_TYPES.flatMap((type) => [1, 2, 3, 4, 5].map((severity) => ({ type, severity })));
  expect(table.cells.map((c) => [c.type, c.severity])).toEqual(cells.map((c) => [c.type, c.severity]));
  const { count, ids, source } = report.examples;
  expect(table).toMatchObject({ table: 'cifar10', seed: 0, backend: 'torch', examples: { count, ids, source } });
  for (const c of table.cells) {
    expect(c.accuracy).toBeGreaterThanOrEqual(0);
    expect(c.accuracy).toBeLessThanOrEqual(1);
  }
  const accuracies = table.cells.map((c) => c.accuracy);
  expect(table.mean).toBeCloseTo(accuracies.reduce((a, b) => a + b, 0) / accuracies.length, 12);
  for (const type of CORRUPTION_TYPES) {
    const own = table.cells.filter((c) => c.type === type).map((c) => c.accuracy);
    expect(table.meanByType[type]).toBeCloseTo(own.reduce((a, b) => a + b, 0) / own.length, 12);
  }

  const dataset = await openDataset(report.request.dataset);
  const clean = await dataset.get(ids);
  const dir = tmp();
  const files: string[] = [];
  for (const { type, severity } of cells) {
    const images = await corruptImages(clean.images, ids.length, 32, type, severity, {
      table: 'cifar10',
      seed: 0,
      ids,
    });
    const file = path.join(dir, `${type}-${severity}.npy`);
    await writeNpy(file, { dtype: 'float32', shape: [ids.length, 32, 32, 3], data: images });
    files.push(file);
  }
  const script = [
    'import json, sys, numpy as np, torch',
    'from mimir_torch import model as M',
    'from mimir_torch.checkpoint import load_checkpoint',
    'from mimir_torch.config import ModelConfig',
    'ckpt = load_checkpoint(sys.argv[1])',
    "config = ModelConfig.parse(ckpt.manifest['modelConfig'], 'modelConfig')",
    'labels = torch.tensor(json.loads(sys.argv[2]))',
    'out = []',
    'with torch.no_grad():',
    '    for file in json.loads(sys.argv[3]):',
    '        logits = M.classifier_forward(ckpt.params, config, torch.from_numpy(np.load(file)))',
    '        out.append(float((logits.argmax(dim=1) == labels).double().mean()))',
    "print(json.dumps({'ok': True, 'accuracies': out}))",
  ].join('\n');
  const result = runPython<{ ok: boolean; accuracies: number[] }>(
    python,
    ['-c', script, report.model.checkpoint, JSON.stringify(Array.from(clean.labels)), JSON.stringify(files)],
    { env: { ...process.env, PYTHONPATH: PYTHON_DIR, ...THREADS } },
  );
  expect(accuracies).toEqual(result.accuracies);
}

describe('ConvNeXt and Swin runs on the PyTorch engine', () => {
  const found = findPythonWithTorch();

  it('the tfjs engine refuses them, naming the PyTorch engine', () => {
    const result = runMimir(['pretrain', '--model', 'convnext-micro', ...DATA, '--epochs', '1', '--out', tmp()]);
    expect(result.status).not.toBe(0);
    expect(result.stderr + result.stdout).toMatch(/runs on the PyTorch engine only/);
  });

  for (const [model, encoderName] of [
    ['convnext-micro', 'stages.3.blocks.0.mlp.fc2.weight'],
    ['swin-micro', 'layers.2.blocks.1.attn.relative_position_bias_table'],
  ] as const) {
    it(`${model}: MIMIR pre-training to done, PGD-AT fine-tuning from its checkpoint, evaluation on the PyTorch engine`, async () => {
      if (!found.python) throw new Error(found.reason);
      const pre = tmp();
      const run = runMimir(
        [
          'pretrain',
          '--engine',
          'torch',
          '--model',
          model,
          ...DATA,
          '--mode',
          'mimir',
          '--epochs',
          '1',
          '--config',
          configFile(pre, { checkpointEvery: 1, attack: { steps: 1 } }),
          '--out',
          pre,
          '--json',
        ],
        THREADS,
      );
      expect(run.status, run.stderr).toBe(0);
      const list = events(run.stdout);
      expect(list[0]).toMatchObject({ type: 'started', runKind: 'pretrain', backend: 'torch', totalSteps: 2 });
      const steps = list.filter((e) => e.type === 'metrics' && e.values.mi !== undefined);
      expect(steps.length).toBeGreaterThan(0);
      for (const e of steps) {
        if (e.type !== 'metrics') continue;
        expect(Number.isFinite(e.values.loss) && Number.isFinite(e.values.mi)).toBe(true);
      }
      expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 1, step: 2 });
      expect(checkpointNames(list)).toContain(encoderName);
      // Reconstruction previews as the ViT's: at the start and at the end of each epoch, five strips each.
      const previews = list.filter((e) => e.type === 'preview');
      expect(previews.map((e) => e.step)).toEqual([0, 2]);
      for (const e of previews) {
        if (e.type !== 'preview') continue;
        expect(Object.keys(e.files).sort()).toEqual([
          'adversarial',
          'clean',
          'masked',
          'perturbation',
          'reconstruction',
        ]);
        for (const file of Object.values(e.files)) expect(pngSize(file)).toEqual([32 * e.count, 32]);
      }

      const tuned = tmp();
      const ft = runMimir(
        [
          'finetune',
          '--engine',
          'torch',
          '--from',
          pre,
          '--method',
          'pgd-at',
          ...DATA,
          '--epochs',
          '1',
          '--config',
          configFile(tuned, { checkpointEvery: 1, attack: { steps: 1 }, heldOut: { size: 8, pgdSteps: 2 } }),
          '--out',
          tuned,
          '--json',
        ],
        THREADS,
      );
      expect(ft.status, ft.stderr).toBe(0);
      const ftEvents = events(ft.stdout);
      expect(ftEvents.at(-1)).toMatchObject({ type: 'done', epoch: 1, step: 2 });
      const epoch = ftEvents.find((e) => e.type === 'metrics' && e.values.heldout_pgd_acc !== undefined);
      expect(epoch).toBeDefined();
      expect(checkpointNames(ftEvents)).toEqual(expect.arrayContaining([encoderName, 'head.fc.weight']));
      // mimir eval picks the PyTorch engine for it; on the held-out examples (the first 8 of the test split,
      // PGD-2 at the fine-tuning's step size) its natural accuracy is the fine-tuning's own.
      const heldOut = epoch?.type === 'metrics' ? epoch.values : {};
      const evalDir = tmp();
      const evaluated = runMimir(
        [
          'eval',
          '--model',
          tuned,
          '--attacks',
          'natural,pgd:2,pgd20,corruptions',
          '--n',
          '8',
          '--out',
          evalDir,
          '--json',
        ],
        THREADS,
      );
      expect(evaluated.status, evaluated.stderr).toBe(0);
      const report = EvaluationReport.parse(JSON.parse(evaluated.stdout));
      expect(report.backend).toBe('torch');
      expect(report.examples.ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(report.naturalAccuracy).toBe(heldOut.heldout_natural_acc);
      expect(report.attacks.map((a) => [a.key, a.protocol.steps, a.protocol.backend])).toEqual([
        ['natural', null, 'torch'],
        ['pgd2', 2, 'torch'],
        ['pgd20', 20, 'torch'],
      ]);
      for (const a of report.attacks) {
        expect(a.robustAccuracy).toBeGreaterThanOrEqual(0);
        expect(a.robustAccuracy).toBeLessThanOrEqual(report.naturalAccuracy);
        expect(a.flipped.count).toBe(Math.round((report.naturalAccuracy - a.robustAccuracy) * 8));
      }
      expect(report.worstCase?.attacks).toEqual(['pgd2', 'pgd20']);
      expectMaskingAndImages(report, evalDir);
      await expectCorruptionTable(report, found.python);
      // The file the done event names is the report printed.
      expect(EvaluationReport.parse(JSON.parse(readFileSync(path.join(evalDir, 'report.json'), 'utf8')))).toEqual(
        report,
      );
      // What only the tfjs engine runs is refused by name, before Python starts.
      const refused = runMimir([
        'eval',
        '--model',
        tuned,
        '--attacks',
        'natural,autoattack,cw,corruptions',
        '--n',
        '8',
        '--out',
        tmp(),
      ]);
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(
        /PyTorch engine evaluates natural, pgd20, pgd, corruptions so far; autoattack, cw run on the TensorFlow\.js engine only/,
      );
    }, 600_000);
  }
});
