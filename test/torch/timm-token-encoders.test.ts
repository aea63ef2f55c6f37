import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../../src/engine/checkpoint';
import { exportCheckpoint } from '../../src/engine/export';
import { placeholderRecord } from '../../src/engine/export/checkpoint-source';
import { timmCaitModel, timmConvitModel, toTimmTokenEncoder } from '../../src/engine/export/token-encoders';
import { encodeSafetensors } from '../../src/engine/io/safetensors';
import {
  classifierForward,
  classifierParamSpecs,
  disposeParams,
  initClassifierParams,
  initMaeParams,
  maeForward,
  randomMasking,
  type ParamSpec,
} from '../../src/engine/model';
import { modelConfigFromPreset, type ModelConfig } from '../../src/shared/model-config';
import { useBackend } from '../helpers/backend';
import { timmPython } from '../helpers/timm-python';
import { randomImages, randomizeParams, Rng } from '../engine/model/fixtures';
import { runPython } from '../engine/io/python-torch';

/**
 * ConViT and CaiT against timm itself (installed from PyPI into a virtual environment by the test):
 * parameter counts of convit_small and cait_s24_224, the timm-layout export loading strictly into
 * timm's models with the same logits, and the PyTorch engine's encoders agreeing with the tfjs engine
 * (logits, MAE loss and MAE gradients) within 1e-4.
 */
const PYTHON_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../python');
const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'timm_token_encoders.py');

const convitSmall: ModelConfig = modelConfigFromPreset('vit-s', 224, {
  width: 432,
  heads: 9,
  depth: 12,
  patchSize: 16,
  encoder: { kind: 'convit', localUpToLayer: 10, localityStrength: 1, qkvBias: false },
});
const caitS24: ModelConfig = modelConfigFromPreset('vit-s', 224, {
  width: 384,
  heads: 8,
  depth: 24,
  patchSize: 16,
  encoder: { kind: 'cait', classAttentionBlocks: 2, layerScaleInit: 1e-5, qkvBias: true },
});
const microConvit: ModelConfig = modelConfigFromPreset('micro', 16, {
  heads: 4,
  encoder: { kind: 'convit', localUpToLayer: 1, localityStrength: 1, qkvBias: true },
});
const microCait: ModelConfig = modelConfigFromPreset('micro', 16, {
  heads: 4,
  encoder: { kind: 'cait', classAttentionBlocks: 2, layerScaleInit: 1e-5, qkvBias: true },
});
const CLASSES = 5;

const size = (specs: ParamSpec[]) => specs.reduce((a, s) => a + s.shape.reduce((b, d) => b * d, 1), 0);

type Entry = { dtype: 'F32' | 'I32'; shape: readonly number[]; values: ArrayLike<number> };
const entry = (t: tf.Tensor): Entry => ({
  dtype: t.dtype === 'int32' ? 'I32' : 'F32',
  shape: t.shape,
  values: t.dataSync() as ArrayLike<number>,
});

interface MicroOutcome {
  timmVsTfjsLogits: number;
  torchVsTfjsLogits: number;
  logitsScale: number;
  torchLoss: number;
  tfjsLoss: number;
  gradMaxDiff: number;
  gradScale: number;
  timmKeys: number;
  exportVsTfjsLogits: number;
  initMaxDiff: number;
  initLocal: boolean;
  exportArchitecture: string;
}
interface FullOutcome {
  timmParams: number;
  ourParams: number;
  logitsMaxDiff: number;
  logitsScale: number;
}

/** Write one micro case: tfjs weights (classifier and MAE), its logits, MAE loss and gradients, and the timm export. */
async function writeMicroCase(
  dir: string,
  config: ModelConfig,
  timm: ReturnType<typeof timmConvitModel>,
): Promise<void> {
  const rng = new Rng(5);
  const classifier = initClassifierParams(config, CLASSES, rng);
  const mae = initMaeParams(config, rng);
  randomizeParams(classifier, rng);
  randomizeParams(mae, rng);
  const images = randomImages(rng, 2, config);
  const mask = randomMasking(rng, 2, 16, 0.75, { order: 'shuffled' });
  const logits = classifierForward(classifier, config, images.tensor).logits;
  const { value: loss, grads } = tf.variableGrads(() => maeForward(mae, config, images.tensor, mask).loss);
  const native = new Map<string, Entry>([
    ['images', entry(images.tensor)],
    ['tfjs.logits', entry(logits)],
    ['tfjs.loss', entry(tf.reshape(loss, [1]))],
    ['mask.visible', entry(mask.visibleIds)],
    ['mask.masked', entry(mask.maskedIds)],
  ]);
  for (const [name, v] of classifier) native.set(`param.${name}`, entry(v));
  // The engines' initial weights for one seed (draws in spec order, then the encoder's adjustInit).
  const initial = initMaeParams(config, new Rng(9));
  for (const [name, v] of initial) native.set(`init.${name}`, entry(v));
  disposeParams(initial);
  for (const [name, v] of mae) {
    native.set(`mae.${name}`, entry(v));
    const g = grads[v.name];
    if (!g) throw new Error(`no tfjs gradient for ${name}`);
    native.set(`tfjs.grad.${name}`, entry(g));
  }
  const weights = new Map(
    [...classifier].map(([name, v]) => [name, { shape: v.shape, data: v.dataSync() as Float32Array }] as const),
  );
  const exported = toTimmTokenEncoder(weights, classifierParamSpecs(config, CLASSES), config);
  const timmEntries = new Map<string, Entry>(
    [...exported].map(([name, w]) => [name, { dtype: 'F32', shape: w.shape, values: w.data }] as const),
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'native.safetensors'), encodeSafetensors(native));
  writeFileSync(path.join(dir, 'timm.safetensors'), encodeSafetensors(timmEntries));
  writeFileSync(path.join(dir, 'case.json'), JSON.stringify({ model: config, numClasses: CLASSES, timm }));
  // The same classifier saved as a checkpoint and exported as `mimir export` does.
  const checkpoints = path.join(dir, 'run');
  const record = placeholderRecord(config, CLASSES, [], 'pgd-at', dir);
  await saveCheckpoint(checkpoints, {
    kind: 'finetune',
    epoch: 1,
    step: 1,
    runConfig: JSON.parse(JSON.stringify(record)),
    modelConfig: JSON.parse(JSON.stringify(config)),
    params: classifier,
    optimizer: null,
    rng: { state: new Rng(0).state(), dataIterator: null },
  });
  const exported2 = await exportCheckpoint(checkpoints, path.join(dir, 'export.safetensors'));
  expect(exported2.config.architecture).toBe(config.encoder.kind === 'convit' ? 'convit.ConVit' : 'cait.Cait');
  disposeParams(classifier);
  disposeParams(mae);
  mask.dispose();
  images.tensor.dispose();
  logits.dispose();
  loss.dispose();
  Object.values(grads).forEach((g) => g.dispose());
}

describe('ConViT and CaiT against timm and across the engines', () => {
  let result: { timm: string; full: Record<string, FullOutcome>; micro: Record<string, MicroOutcome> };

  beforeAll(async () => {
    await useBackend('wasm');
    const python = timmPython();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-timm-parity-'));
    await writeMicroCase(path.join(dir, 'convit'), microConvit, timmConvitModel(microConvit, CLASSES));
    await writeMicroCase(path.join(dir, 'cait'), microCait, timmCaitModel(microCait, CLASSES));
    const full = {
      convit_small: { architecture: timmConvitModel(convitSmall, 1000).architecture, model: convitSmall },
      cait_s24_224: { architecture: timmCaitModel(caitS24, 1000).architecture, model: caitS24 },
    };
    writeFileSync(path.join(dir, 'full.json'), JSON.stringify(full));
    result = runPython({ executable: python, torch: '', safetensors: false }, [SCRIPT, dir], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR },
      timeoutMs: 600_000,
    });
    console.info(`timm ${result.timm}: ${JSON.stringify(result, null, 1)}`);
  }, 900_000);

  it('the presets name timm models: convit_small and cait_s24_224', () => {
    expect(timmConvitModel(convitSmall, 1000).architecture).toBe('convit_small');
    expect(timmCaitModel(caitS24, 1000).architecture).toBe('cait_s24_224');
    expect(timmConvitModel(microConvit, CLASSES).architecture).toBe('ConVit');
    expect(timmCaitModel(microCait, CLASSES).architecture).toBe('Cait');
  });

  it("parameter counts equal timm's convit_small and cait_s24_224, in both engines", () => {
    const convit = result.full.convit_small;
    const cait = result.full.cait_s24_224;
    expect(convit?.timmParams).toBe(27_777_322);
    expect(cait?.timmParams).toBe(46_916_200);
    expect(size(classifierParamSpecs(convitSmall, 1000))).toBe(convit?.timmParams);
    expect(size(classifierParamSpecs(caitS24, 1000))).toBe(cait?.timmParams);
    expect(convit?.ourParams).toBe(convit?.timmParams);
    expect(cait?.ourParams).toBe(cait?.timmParams);
  });

  it("the PyTorch engine's full-size encoders, exported to timm's layout, give timm's logits", () => {
    for (const outcome of Object.values(result.full)) {
      expect(outcome.logitsScale).toBeGreaterThan(0.1);
      expect(outcome.logitsMaxDiff).toBeLessThan(1e-4);
    }
  });

  it.each(['convit', 'cait'])(
    "%s: the tfjs export loads strictly into timm's model and gives the tfjs logits",
    (family) => {
      const outcome = result.micro[family];
      expect(outcome?.logitsScale).toBeGreaterThan(0.1);
      expect(outcome?.timmVsTfjsLogits).toBeLessThan(1e-4);
    },
  );

  it.each(['convit', 'cait'])(
    "%s: a checkpoint exported as `mimir export` does (timm names, config JSON naming timm's class) loads strictly into timm with the tfjs logits",
    (family) => {
      const outcome = result.micro[family];
      expect(outcome?.exportArchitecture).toBe(family === 'convit' ? 'convit.ConVit' : 'cait.Cait');
      expect(outcome?.exportVsTfjsLogits).toBeLessThan(1e-4);
    },
  );

  it.each(['convit', 'cait'])(
    '%s: both engines initialise the same weights from one seed (local init, LayerScale, sin-cos pos_embed)',
    (family) => {
      const outcome = result.micro[family];
      expect(outcome?.initLocal).toBe(true);
      expect(outcome?.initMaxDiff).toBeLessThan(1e-6);
    },
  );

  it.each(['convit', 'cait'])('%s: logits, MAE loss and MAE gradients agree between the engines', (family) => {
    const outcome = result.micro[family];
    expect(outcome?.torchVsTfjsLogits).toBeLessThan(1e-4);
    expect(Math.abs((outcome?.torchLoss ?? NaN) - (outcome?.tfjsLoss ?? NaN))).toBeLessThan(1e-4);
    expect(outcome?.gradScale).toBeGreaterThan(1e-3);
    expect(outcome?.gradMaxDiff).toBeLessThan(1e-4);
  });
});
