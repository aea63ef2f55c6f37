import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../src/engine/io/npy';
import { disposeParams } from '../../src/engine/model';
import { Rng } from '../../src/engine/rng';
import { useBackend } from '../helpers/backend';
import { ROOT } from '../helpers/build';
import { runMimir } from '../helpers/cli';
import { trainedClassifierCheckpoint } from '../engine/export/fixtures';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-export-'));

describe('mimir export / import', () => {
  let model: string;
  let input: string;

  beforeAll(async () => {
    await useBackend('cpu');
    const made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, seed: 5, headInitStd: 1 });
    disposeParams(made.params);
    model = path.dirname(path.dirname(made.path)); // the run folder
    const rng = new Rng(8);
    input = path.join(tmp(), 'x.npy');
    await writeNpy(input, {
      dtype: 'float32',
      shape: [6, 16, 16, 3],
      data: Float32Array.from({ length: 6 * 768 }, () => rng.uniform()),
    });
  });

  const predict = (checkpoint: string): number[][] => {
    const run = runMimir(['predict', '--model', checkpoint, '--input', input, '--json']);
    expect(run.status, run.stderr).toBe(0);
    return (JSON.parse(run.stdout) as { logits: number[][] }).logits;
  };

  it("gives PyTorch (a ViT with timm's module names, strict load) the logits of mimir predict", (context) => {
    const dir = tmp();
    const file = path.join(dir, 'vit.safetensors');
    const run = runMimir(['export', '--model', model, '--to', file, '--json']);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { config: string; tensors: number; naming: string };
    expect(summary).toMatchObject({ naming: 'timm', config: path.join(dir, 'vit.json') });
    expect(existsSync(summary.config)).toBe(true);
    const ours = predict(model);

    const { python, reason } = findPythonWithTorch();
    if (!python) {
      console.log(`PyTorch check skipped: ${reason}`);
      context.skip();
      return;
    }
    const torchOut = runPython<{ logits: number[][]; keys: number }>(python, [
      path.join(ROOT, 'test/engine/export/timm_vit.py'),
      summary.config,
      file,
      input,
    ]);
    expect(torchOut.keys).toBe(summary.tensors);
    const worst = Math.max(...torchOut.logits.flat().map((v, i) => Math.abs(v - (ours.flat()[i] ?? Number.NaN))));
    console.log(
      `mimir predict vs PyTorch timm-named ViT: max |logit diff| ${worst.toExponential(2)} over ${ours.flat().length} logits`,
    );
    expect(worst).toBeLessThan(1e-4);
  });

  it('imports the export into a checkpoint that predicts exactly the same', () => {
    const dir = tmp();
    for (const naming of ['timm', 'native']) {
      const file = path.join(dir, `${naming}.safetensors`);
      const exported = runMimir(['export', '--model', model, '--to', file, '--naming', naming]);
      expect(exported.status, exported.stderr).toBe(0);
      expect(exported.stdout).toContain(`wrote ${file}`);
      const out = path.join(dir, `imported-${naming}`);
      const imported = runMimir([
        'import',
        '--from',
        file,
        '--config',
        file.replace(/\.safetensors$/, '.json'),
        '--out',
        out,
        '--json',
      ]);
      expect(imported.status, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout)).toMatchObject({ kind: 'finetune', naming, numClasses: 4 });
      expect(predict(out)).toEqual(predict(model));
    }
    const config = JSON.parse(readFileSync(path.join(dir, 'timm.json'), 'utf8')) as { model_args: object };
    expect(config.model_args).toMatchObject({ global_pool: 'avg', fc_norm: true, class_token: true, qkv_bias: true });
  });

  it('refuses to replace a file beside the export (X.json) unless --overwrite', () => {
    const dir = tmp();
    const project = path.join(dir, 'package.json');
    writeFileSync(project, '{"name": "my-project"}\n');
    const file = path.join(dir, 'package.safetensors');
    const refused = runMimir(['export', '--model', model, '--to', file]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`mimir: ${project} exists: an export writes package.safetensors and package.json`);
    expect(readFileSync(project, 'utf8')).toBe('{"name": "my-project"}\n');
    expect(existsSync(file)).toBe(false);
    const replaced = runMimir(['export', '--model', model, '--to', file, '--overwrite']);
    expect(replaced.status, replaced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(project, 'utf8'))).toMatchObject({ naming: 'timm' });
  });

  it('says what is wrong with a bad file', () => {
    const missing = runMimir(['import', '--from', path.join(tmp(), 'none.safetensors'), '--out', tmp()]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the model config/);
  });
});
