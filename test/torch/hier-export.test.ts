import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { HierExportConfig } from '../../src/engine/export/hier-encoders';
import { events, runMimir } from '../helpers/cli';
import { timmPython } from '../helpers/timm-python';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * Issue 18's export through `mimir export`: a micro ConvNeXt and a micro Swin, pre-trained (MIMIR) and
 * PGD-AT fine-tuned on the PyTorch engine for one epoch, export with timm's names; timm (PyPI) builds the
 * model from the config JSON, loads the file with strict=True and gives the workbench's own logits (the
 * PyTorch engine's classifier_forward on the checkpoint) within 1e-4; a pre-training checkpoint exports its
 * encoder (num_classes 0). An existing target is not replaced without --overwrite; what these encoders cannot
 * export (native names, a decoder) is refused with the reason; a pre-training does not resume from a
 * fine-tuning's folder.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-hier-export-'));
const THREADS = { OMP_NUM_THREADS: '1' };
const DATA = ['--image-size', '32', '--dataset-size', '16', '--batch', '8'];
const SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), 'timm_hier_export.py');
const TOLERANCE = 1e-4;

interface TimmCheck {
  tensors: number;
  numClasses: number;
  outputShape: number[];
  maxAbsDiff?: number;
  maxAbsLogit?: number;
  relativeDiff?: number;
  logitStd?: number;
  differing: string[];
}

function configFile(dir: string, config: object): string {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

function mimir(args: string[]): ReturnType<typeof runMimir> {
  const run = runMimir(args, THREADS);
  if (run.status !== 0) throw new Error(`mimir ${args.join(' ')} failed: ${run.stderr}`);
  return run;
}

/** `mimir export --json`: its summary and the config JSON written, validated. */
function exportJson(checkpoint: string, file: string): { summary: Record<string, unknown>; config: HierExportConfig } {
  const run = mimir(['export', '--model', checkpoint, '--to', file, '--json']);
  const summary = JSON.parse(run.stdout) as Record<string, unknown>;
  const config = HierExportConfig.parse(JSON.parse(readFileSync(file.replace(/\.safetensors$/, '.json'), 'utf8')));
  return { summary, config };
}

function timmCheck(file: string): TimmCheck {
  return runPython<TimmCheck>({ executable: timmPython(), torch: '', safetensors: false }, [SCRIPT, file], {
    env: { ...process.env, PYTHONPATH: PYTHON_DIR },
    timeoutMs: 300_000,
  });
}

describe('ConvNeXt and Swin exports (mimir export, PyTorch engine) load into timm', () => {
  const found = findPythonWithTorch();
  const runs: Record<string, { pre: string; tuned: string }> = {};

  beforeAll(() => {
    if (!found.python) throw new Error(found.reason);
    timmPython(); // built once, before the exports are checked
    for (const model of ['convnext-micro', 'swin-micro']) {
      const pre = tmp();
      mimir([
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
        configFile(pre, { attack: { steps: 1 } }),
        '--out',
        pre,
        '--json',
      ]);
      const tuned = tmp();
      const ft = mimir([
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
        configFile(tuned, { attack: { steps: 1 }, heldOut: { size: 0 } }),
        '--out',
        tuned,
        '--json',
      ]);
      expect(events(ft.stdout).at(-1)).toMatchObject({ type: 'done', epoch: 1 });
      runs[model] = { pre, tuned };
    }
  }, 900_000);

  for (const [model, architecture, lastWidth] of [
    ['convnext-micro', 'convnext.ConvNeXt', 128],
    ['swin-micro', 'swin_transformer.SwinTransformer', 64],
  ] as const) {
    it(`${model}: the fine-tuning export gives the workbench's logits in timm (strict load); the pre-training export is the encoder`, () => {
      const run = runs[model];
      if (!run) throw new Error('no runs');
      const out = tmp();
      const tunedFile = path.join(out, 'classifier.safetensors');
      const tuned = exportJson(run.tuned, tunedFile);
      expect(tuned.summary).toMatchObject({ kind: 'finetune', naming: 'timm', modelArgs: { num_classes: 10 } });
      expect(tuned.config).toMatchObject({
        architecture,
        timm_model: null,
        num_classes: 10,
        mimir: { kind: 'finetune', numClasses: 10, headOutputs: 10, method: 'pgd-at' },
      });
      const check = timmCheck(tunedFile);
      console.info(`${model} fine-tuning export in timm: ${JSON.stringify(check)}`);
      expect(check.tensors).toBe(tuned.summary.tensors);
      expect(check.differing).toEqual([]);
      expect(check.outputShape).toEqual([4, 10]);
      expect(check.logitStd).toBeGreaterThan(0);
      expect(check.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
      // The logits of a one-epoch fine-tuning are small: the relative difference is the one that bites.
      expect(check.relativeDiff).toBeLessThanOrEqual(TOLERANCE);

      const preFile = path.join(out, 'encoder.safetensors');
      const pre = exportJson(run.pre, preFile);
      expect(pre.summary).toMatchObject({ kind: 'pretrain', modelArgs: { num_classes: 0 } });
      expect(pre.config).toMatchObject({ architecture, num_classes: 0, mimir: { kind: 'pretrain', headOutputs: 0 } });
      const encoder = timmCheck(preFile);
      expect(encoder.tensors).toBe(pre.summary.tensors);
      expect(encoder.differing).toEqual([]);
      expect(encoder.outputShape).toEqual([4, lastWidth]);
    }, 600_000);
  }

  it('refuses to replace an existing export without --overwrite, and replaces it with', () => {
    const run = runs['convnext-micro'];
    if (!run) throw new Error('no runs');
    const file = path.join(tmp(), 'model.safetensors');
    mimir(['export', '--model', run.tuned, '--to', file]);
    const before = [readFileSync(file), readFileSync(file.replace(/\.safetensors$/, '.json'))];
    writeFileSync(file, 'mine');
    const refused = runMimir(['export', '--model', run.pre, '--to', file], THREADS);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(`${file} exists`);
    expect(refused.stderr).toMatch(/allow overwriting/);
    expect(readFileSync(file, 'utf8')).toBe('mine');
    expect(readFileSync(file.replace(/\.safetensors$/, '.json'))).toEqual(before[1]);
    mimir(['export', '--model', run.tuned, '--to', file, '--overwrite']);
    expect(readFileSync(file)).toEqual(before[0]);
  }, 300_000);

  it('refuses native names and a decoder for these encoders, saying why', () => {
    const run = runs['swin-micro'];
    if (!run) throw new Error('no runs');
    const native = runMimir([
      'export',
      '--model',
      run.tuned,
      '--to',
      path.join(tmp(), 'n.safetensors'),
      '--naming',
      'native',
    ]);
    expect(native.status).not.toBe(0);
    expect(native.stderr).toMatch(/Swin checkpoint holds timm's names and layouts already.*--naming timm/);
    const decoder = runMimir(['export', '--model', run.pre, '--to', path.join(tmp(), 'd.safetensors'), '--decoder']);
    expect(decoder.status).not.toBe(0);
    expect(decoder.stderr).toMatch(/exports its encoder only: timm has no GreenMIM decoder/);
  });

  it('mimir pretrain --engine torch --resume refuses a fine-tuning run’s folder, naming the kinds', () => {
    const run = runs['convnext-micro'];
    if (!run) throw new Error('no runs');
    const resumed = runMimir(['pretrain', '--engine', 'torch', '--resume', run.tuned, '--json'], THREADS);
    expect(resumed.status).not.toBe(0);
    expect(resumed.stdout + resumed.stderr).toMatch(
      /is a fine-tuning checkpoint; --resume continues a pre-training run: give a pre-training run's folder/,
    );
  }, 120_000);
});
