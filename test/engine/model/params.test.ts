import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkParams,
  classifierParamSpecs,
  classifierParamsFromEncoder,
  countParams,
  disposeParams,
  initClassifierParams,
  initMaeParams,
  maeParamSpecs,
} from '../../../src/engine/model';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';
import { microConfig } from './fixtures';

function stats(values: ArrayLike<number>): { mean: number; std: number; maxAbs: number } {
  let sum = 0;
  let sq = 0;
  let maxAbs = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    sum += v;
    sq += v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sq / values.length - mean * mean), maxAbs };
}

describe('parameters', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('follow timm / MAE names and shapes, in order, with pos_embed not a parameter', () => {
    const c = microConfig();
    const names = maeParamSpecs(c).map((s) => s.name);
    expect(names.slice(0, 5)).toEqual([
      'cls_token',
      'patch_embed.proj.weight',
      'patch_embed.proj.bias',
      'blocks.0.norm1.weight',
      'blocks.0.norm1.bias',
    ]);
    expect(names).toContain('blocks.1.attn.qkv.weight');
    expect(names).toContain('blocks.1.mlp.fc2.bias');
    expect(names.slice(-4)).toEqual([
      'decoder_norm.weight',
      'decoder_norm.bias',
      'decoder_pred.weight',
      'decoder_pred.bias',
    ]);
    expect(names.some((n) => n.includes('pos_embed'))).toBe(false);
    expect(names.indexOf('norm.weight')).toBeLessThan(names.indexOf('mask_token'));
    const shapes = new Map(maeParamSpecs(c).map((s) => [s.name, s.shape]));
    expect(shapes.get('patch_embed.proj.weight')).toEqual([48, 32]);
    expect(shapes.get('blocks.0.attn.qkv.weight')).toEqual([32, 96]);
    expect(shapes.get('blocks.0.mlp.fc1.weight')).toEqual([32, 128]);
    expect(shapes.get('mask_token')).toEqual([1, 1, 32]);
    expect(shapes.get('decoder_pred.weight')).toEqual([32, 48]);
    const cls = classifierParamSpecs(c, 10).map((s) => s.name);
    expect(cls.slice(-4)).toEqual(['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']);
    expect(cls).not.toContain('norm.weight');
    expect(cls).not.toContain('mask_token');
  });

  it('have the parameter count of timm ViT-T / ViT-S / ViT-B (without pos_embed)', () => {
    // timm vit_tiny_patch16_224 has 5,717,416 parameters with 1000 classes, of which 197 * 192 are pos_embed.
    const specs = classifierParamSpecs(modelConfigFromPreset('vit-t', 224), 1000);
    const count = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    expect(count + 197 * 192).toBe(5_717_416);
    const base = classifierParamSpecs(modelConfigFromPreset('vit-b', 224), 1000);
    expect(base.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0) + 197 * 768).toBe(86_567_656);
  });

  it('initialise as MAE: Xavier-uniform linears, zero biases, unit norms, N(0, 0.02) tokens, repeatably', () => {
    const c = modelConfigFromPreset('small-cpu');
    const params = initMaeParams(c, new Rng(42));
    const again = initMaeParams(c, new Rng(42));
    const other = initMaeParams(c, new Rng(43));
    const qkv = params.get('blocks.0.attn.qkv.weight')?.dataSync() ?? [];
    expect(Array.from(again.get('blocks.0.attn.qkv.weight')?.dataSync() ?? [])).toEqual(Array.from(qkv));
    expect(Array.from(other.get('blocks.0.attn.qkv.weight')?.dataSync() ?? [])).not.toEqual(Array.from(qkv));

    const bound = Math.sqrt(6 / (64 + 192));
    const s = stats(qkv);
    expect(s.maxAbs).toBeLessThanOrEqual(bound);
    expect(s.maxAbs).toBeGreaterThan(0.98 * bound);
    expect(s.std).toBeCloseTo(bound / Math.sqrt(3), 2);
    const patch = stats(params.get('patch_embed.proj.weight')?.dataSync() ?? []);
    expect(patch.maxAbs).toBeLessThanOrEqual(Math.sqrt(6 / (48 + 64)));
    expect(patch.maxAbs).toBeGreaterThan(0.95 * Math.sqrt(6 / (48 + 64)));
    for (const name of ['blocks.0.attn.qkv.bias', 'patch_embed.proj.bias', 'decoder_pred.bias', 'norm.bias']) {
      expect(stats(params.get(name)?.dataSync() ?? [1]).maxAbs).toBe(0);
    }
    expect(Array.from(params.get('decoder_norm.weight')?.dataSync() ?? []).every((v) => v === 1)).toBe(true);
    const tokens = [...(params.get('cls_token')?.dataSync() ?? []), ...(params.get('mask_token')?.dataSync() ?? [])];
    expect(stats(tokens).std).toBeGreaterThan(0.012);
    expect(stats(tokens).std).toBeLessThan(0.03);
    checkParams(params, maeParamSpecs(c));
    [params, again, other].forEach(disposeParams);
  });

  it('builds a classifier from a pre-trained encoder: backbone copied, fresh fc_norm and head (std 2e-5 or 2e-2)', () => {
    const c = microConfig();
    const mae = initMaeParams(c, new Rng(1));
    const cls = classifierParamsFromEncoder(mae, c, 10, new Rng(2));
    checkParams(cls, classifierParamSpecs(c, 10));
    for (const name of ['cls_token', 'patch_embed.proj.weight', 'blocks.1.mlp.fc2.weight']) {
      expect(Array.from(cls.get(name)?.dataSync() ?? [])).toEqual(Array.from(mae.get(name)?.dataSync() ?? [0]));
    }
    const head = stats(cls.get('head.weight')?.dataSync() ?? []);
    expect(head.std).toBeGreaterThan(1e-5);
    expect(head.std).toBeLessThan(3e-5);
    expect(stats(cls.get('head.bias')?.dataSync() ?? [1]).maxAbs).toBe(0);
    // Independent copies: changing the classifier leaves the MAE alone.
    const zeros = tf.zeros([1, 1, 32]);
    cls.get('cls_token')?.assign(zeros);
    zeros.dispose();
    expect(stats(mae.get('cls_token')?.dataSync() ?? []).maxAbs).toBeGreaterThan(0);

    const wide = initClassifierParams(c, 10, new Rng(3), { headInitStd: 2e-2 });
    const wideHead = stats(wide.get('head.weight')?.dataSync() ?? []);
    expect(wideHead.std).toBeGreaterThan(0.012);
    expect(wideHead.std).toBeLessThan(0.03);
    expect(countParams(wide)).toBe(countParams(cls));
    expect(() => classifierParamsFromEncoder(new Map(), c, 10, new Rng(1))).toThrow(/no "cls_token"/);
    [mae, cls, wide].forEach(disposeParams);
    expect(tf.memory().numTensors).toBe(0);
  });
});
