import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { timmCaitModel, timmConvitModel, toTimmTokenEncoder } from '../../src/engine/export/token-encoders';
import { encodeSafetensors } from '../../src/engine/io/safetensors';
import {
  caitClassifierForward,
  caitClassifierParamSpecs,
  caitMaeForward,
  initCaitClassifierParams,
  initCaitMaeParams,
  type CaitEncoder,
} from '../../src/engine/model/cait';
import {
  convitClassifierForward,
  convitClassifierParamSpecs,
  convitMaeForward,
  initConvitClassifierParams,
  initConvitMaeParams,
  type ConvitEncoder,
} from '../../src/engine/model/convit';
import { disposeParams, randomMasking, type ParamMap, type ParamSpec } from '../../src/engine/model';
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

const CONVIT_SMALL: ConvitEncoder = { localUpToLayer: 10, localityStrength: 1, qkvBias: false };
const CAIT_S24: CaitEncoder = { depthTokenOnly: 2, initValues: 1e-5, mlpRatioTokenOnly: 4, qkvBias: true };
const convitSmall: ModelConfig = modelConfigFromPreset('vit-s', 224, {
  width: 432,
  heads: 9,
  depth: 12,
  patchSize: 16,
});
const caitS24: ModelConfig = modelConfigFromPreset('vit-s', 224, { width: 384, heads: 8, depth: 24, patchSize: 16 });
const micro: ModelConfig = modelConfigFromPreset('micro', 16, { heads: 4 });
const MICRO_CONVIT: ConvitEncoder = { localUpToLayer: 1, localityStrength: 1, qkvBias: true };
const MICRO_CAIT: CaitEncoder = { depthTokenOnly: 2, initValues: 1e-5, mlpRatioTokenOnly: 4, qkvBias: true };
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
}
interface FullOutcome {
  timmParams: number;
  ourParams: number;
  logitsMaxDiff: number;
  logitsScale: number;
}

/** Write one micro case: tfjs weights (classifier and MAE), its logits, MAE loss and gradients, and the timm export. */
function writeMicroCase(
  dir: string,
  family: 'convit' | 'cait',
  init: { classifier: (rng: Rng) => ParamMap; mae: (rng: Rng) => ParamMap },
  forward: {
    logits: (p: ParamMap, x: tf.Tensor4D) => tf.Tensor2D;
    loss: (p: ParamMap, x: tf.Tensor4D, m: ReturnType<typeof randomMasking>) => tf.Scalar;
  },
  classifierSpecs: ParamSpec[],
  timm: ReturnType<typeof timmConvitModel>,
  encoder: ConvitEncoder | CaitEncoder,
): void {
  const rng = new Rng(5);
  const classifier = init.classifier(rng);
  const mae = init.mae(rng);
  randomizeParams(classifier, rng);
  randomizeParams(mae, rng);
  const images = randomImages(rng, 2, micro);
  const mask = randomMasking(rng, 2, 16, 0.75, { order: 'shuffled' });
  const logits = forward.logits(classifier, images.tensor);
  const { value: loss, grads } = tf.variableGrads(() => forward.loss(mae, images.tensor, mask));
  const native = new Map<string, Entry>([
    ['images', entry(images.tensor)],
    ['tfjs.logits', entry(logits)],
    ['tfjs.loss', entry(tf.reshape(loss, [1]))],
    ['mask.visible', entry(mask.visibleIds)],
    ['mask.masked', entry(mask.maskedIds)],
  ]);
  for (const [name, v] of classifier) native.set(`param.${name}`, entry(v));
  for (const [name, v] of mae) {
    native.set(`mae.${name}`, entry(v));
    const g = grads[v.name];
    if (!g) throw new Error(`no tfjs gradient for ${name}`);
    native.set(`tfjs.grad.${name}`, entry(g));
  }
  const weights = new Map(
    [...classifier].map(([name, v]) => [name, { shape: v.shape, data: v.dataSync() as Float32Array }] as const),
  );
  const exported = toTimmTokenEncoder(weights, classifierSpecs, micro);
  const timmEntries = new Map<string, Entry>(
    [...exported].map(([name, w]) => [name, { dtype: 'F32', shape: w.shape, values: w.data }] as const),
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'native.safetensors'), encodeSafetensors(native));
  writeFileSync(path.join(dir, 'timm.safetensors'), encodeSafetensors(timmEntries));
  writeFileSync(
    path.join(dir, 'case.json'),
    JSON.stringify({ family, model: micro, encoder, numClasses: CLASSES, timm }),
  );
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
    writeMicroCase(
      path.join(dir, 'convit'),
      'convit',
      {
        classifier: (rng) => initConvitClassifierParams(micro, MICRO_CONVIT, CLASSES, rng),
        mae: (rng) => initConvitMaeParams(micro, MICRO_CONVIT, rng),
      },
      {
        logits: (p, x) => convitClassifierForward(p, micro, MICRO_CONVIT, x).logits,
        loss: (p, x, m) => convitMaeForward(p, micro, MICRO_CONVIT, x, m).loss,
      },
      convitClassifierParamSpecs(micro, MICRO_CONVIT, CLASSES),
      timmConvitModel(micro, MICRO_CONVIT, CLASSES),
      MICRO_CONVIT,
    );
    writeMicroCase(
      path.join(dir, 'cait'),
      'cait',
      {
        classifier: (rng) => initCaitClassifierParams(micro, MICRO_CAIT, CLASSES, rng),
        mae: (rng) => initCaitMaeParams(micro, MICRO_CAIT, rng),
      },
      {
        logits: (p, x) => caitClassifierForward(p, micro, MICRO_CAIT, x).logits,
        loss: (p, x, m) => caitMaeForward(p, micro, MICRO_CAIT, x, m).loss,
      },
      caitClassifierParamSpecs(micro, MICRO_CAIT, CLASSES),
      timmCaitModel(micro, MICRO_CAIT, CLASSES),
      MICRO_CAIT,
    );
    const full = {
      convit_small: {
        family: 'convit',
        architecture: timmConvitModel(convitSmall, CONVIT_SMALL, 1000).architecture,
        model: convitSmall,
        encoder: CONVIT_SMALL,
      },
      cait_s24_224: {
        family: 'cait',
        architecture: timmCaitModel(caitS24, CAIT_S24, 1000).architecture,
        model: caitS24,
        encoder: CAIT_S24,
      },
    };
    writeFileSync(path.join(dir, 'full.json'), JSON.stringify(full));
    result = runPython({ executable: python, torch: '', safetensors: false }, [SCRIPT, dir], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR },
      timeoutMs: 600_000,
    });
    console.info(`timm ${result.timm}: ${JSON.stringify(result, null, 1)}`);
  }, 900_000);

  it('the presets name timm models: convit_small and cait_s24_224', () => {
    expect(timmConvitModel(convitSmall, CONVIT_SMALL, 1000).architecture).toBe('convit_small');
    expect(timmCaitModel(caitS24, CAIT_S24, 1000).architecture).toBe('cait_s24_224');
    expect(timmConvitModel(micro, MICRO_CONVIT, CLASSES).architecture).toBe('ConVit');
  });

  it("parameter counts equal timm's convit_small and cait_s24_224, in both engines", () => {
    const convit = result.full.convit_small;
    const cait = result.full.cait_s24_224;
    expect(convit?.timmParams).toBe(27_777_322);
    expect(cait?.timmParams).toBe(46_916_200);
    expect(size(convitClassifierParamSpecs(convitSmall, CONVIT_SMALL, 1000))).toBe(convit?.timmParams);
    expect(size(caitClassifierParamSpecs(caitS24, CAIT_S24, 1000))).toBe(cait?.timmParams);
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

  it.each(['convit', 'cait'])('%s: logits, MAE loss and MAE gradients agree between the engines', (family) => {
    const outcome = result.micro[family];
    expect(outcome?.torchVsTfjsLogits).toBeLessThan(1e-4);
    expect(Math.abs((outcome?.torchLoss ?? NaN) - (outcome?.tfjsLoss ?? NaN))).toBeLessThan(1e-4);
    expect(outcome?.gradScale).toBeGreaterThan(1e-3);
    expect(outcome?.gradMaxDiff).toBeLessThan(1e-4);
  });
});
