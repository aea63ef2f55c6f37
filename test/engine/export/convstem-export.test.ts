import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint, hwioToTorch, importCheckpoint, torchToHwio } from '../../../src/engine/export';
import { writeNpy } from '../../../src/engine/io/npy';
import { readSafetensors } from '../../../src/engine/io/safetensors';
import { classifierForward, disposeParams, type ParamMap } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { useBackend } from '../../helpers/backend';
import { findPythonWithTorch, runPython } from '../io/python-torch';
import { trainedClassifierCheckpoint } from './fixtures';

/** Export of a ViT + ConvStem: workbench names, PyTorch layouts, and the documented module that loads it. */
const MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../docs/export/mimir_convstem_vit.py');
const CONVSTEM = modelConfigFromPreset('convstem-micro', 16);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-convstem-export-'));

describe('export of a ViT + ConvStem', () => {
  let classifier: { path: string; params: ParamMap };

  beforeAll(async () => {
    await useBackend('cpu');
    classifier = await trainedClassifierCheckpoint(tmp(), {
      classes: 4,
      steps: 0,
      seed: 3,
      headInitStd: 1,
      model: CONVSTEM,
    });
  });
  afterAll(() => disposeParams(classifier.params));

  it('maps HWIO kernels to torch [out, in, kh, kw] and back exactly', () => {
    const data = Float32Array.from({ length: 3 * 3 * 2 * 5 }, (_, i) => i);
    const torch = hwioToTorch({ shape: [3, 3, 2, 5], data });
    expect(torch.shape).toEqual([5, 2, 3, 3]);
    // torch[o=4][c=1][i=2][j=0] = hwio[i=2][j=0][c=1][o=4]
    expect(torch.data[((4 * 2 + 1) * 3 + 2) * 3 + 0]).toBe(data[((2 * 3 + 0) * 2 + 1) * 5 + 4]);
    expect(Array.from(torchToHwio(torch).data)).toEqual(Array.from(data));
  });

  it("writes the stem under the authors' names in torch layouts, names the module, and imports back exactly", async () => {
    const dir = tmp();
    const file = path.join(dir, 'convstem.safetensors');
    const result = await exportCheckpoint(classifier.path, file);
    const config = JSON.parse(readFileSync(result.configFile, 'utf8')) as Record<string, unknown>;
    expect(config.architecture).toBe('mimir_convstem_vit.ConvStemViT');
    expect(config.model_args).toMatchObject({ stem_channels: [8, 16], patch_size: 4, embed_dim: 32 });
    const read = await readSafetensors(file);
    const shapes = Object.fromEntries([...read.tensors].map(([n, t]) => [n, t.shape]));
    expect(shapes['patch_embed.proj.stem.0.weight']).toEqual([8, 3, 3, 3]);
    expect(shapes['patch_embed.proj.stem.3.weight']).toEqual([16, 8, 3, 3]);
    expect(shapes['patch_embed.proj.stem.4.weight']).toEqual([16]);
    expect(shapes['patch_embed.proj.stem.6.weight']).toEqual([32, 16, 1, 1]);
    expect('patch_embed.proj.weight' in shapes).toBe(false);

    const imported = await importCheckpoint(file);
    expect(imported.modelConfig).toEqual(CONVSTEM);
    for (const [name, v] of classifier.params) {
      expect(Array.from(imported.weights.get(name)?.data ?? []), name).toEqual(Array.from(await v.data()));
    }
  });

  it('the documented PyTorch module loads the export strictly and gives the tfjs logits within 1e-4', async () => {
    const { python, reason } = findPythonWithTorch();
    if (!python) throw new Error(`this check needs Python with torch: ${reason}`);
    const dir = tmp();
    const file = path.join(dir, 'convstem.safetensors');
    const exported = await exportCheckpoint(classifier.path, file);
    const rng = new Rng(9);
    const images = Float32Array.from({ length: 5 * 16 * 16 * 3 }, () => rng.uniform());
    const input = path.join(dir, 'x.npy');
    await writeNpy(input, { dtype: 'float32', shape: [5, 16, 16, 3], data: images });
    const x = tf.tensor4d(images, [5, 16, 16, 3]);
    const ours = classifierForward(classifier.params, CONVSTEM, x).logits;
    const expected = Array.from(await ours.data());
    tf.dispose([x, ours]);
    const out = runPython<{ ok: boolean; logits: number[][]; keys: number }>(python, [
      MODULE,
      exported.configFile,
      file,
      input,
    ]);
    // The strict load took every exported tensor (pos_embed included) and the module has no other key.
    expect(out.keys).toBe(exported.tensors.length);
    const theirs = out.logits.flat();
    expect(theirs).toHaveLength(expected.length);
    const worst = Math.max(...theirs.map((v, i) => Math.abs(v - (expected[i] ?? 0))));
    const scale = Math.max(...expected.map(Math.abs));
    console.log(
      `ConvStem module (torch ${python.torch}) vs engine logits: max |diff| ${worst.toExponential(2)} (logits up to ${scale.toFixed(3)})`,
    );
    expect(scale).toBeGreaterThan(0.1);
    expect(worst).toBeLessThan(1e-4);
  });
});
