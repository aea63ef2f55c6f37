import { describe, expect, it } from 'vitest';
import {
  describePreset,
  MODEL_PRESETS,
  ModelConfig,
  modelConfigFromPreset,
  numPatches,
  numVisiblePatches,
  patchDim,
} from '../../../src/shared/model-config';

const base = {
  imageSize: 32,
  patchSize: 2,
  width: 192,
  depth: 12,
  heads: 3,
  decoderWidth: 128,
  decoderDepth: 2,
  decoderHeads: 16,
};

function messages(input: unknown): string[] {
  const result = ModelConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => i.message);
}

describe('ModelConfig', () => {
  it('fills defaults: 3 channels, MLP ratio 4, no normalisation', () => {
    const c = ModelConfig.parse(base);
    expect(c.channels).toBe(3);
    expect(c.mlpRatio).toBe(4);
    expect(c.normalize).toBeUndefined();
    expect(numPatches(c)).toBe(256);
    expect(patchDim(c)).toBe(12);
    expect(numVisiblePatches(c, 0.75)).toBe(64);
  });

  it('rejects inconsistent shapes with messages that name the problem', () => {
    expect(messages({ ...base, patchSize: 3 })).toContain('imageSize 32 is not divisible by patchSize 3');
    expect(messages({ ...base, heads: 5 })).toContain('width 192 is not divisible by heads 5');
    expect(messages({ ...base, decoderHeads: 6 })).toContain('decoderWidth 128 is not divisible by decoderHeads 6');
    expect(messages({ ...base, width: 198, heads: 3 })).toContain(
      'width 198 must be divisible by 4 (2-D sin-cos position embedding)',
    );
    expect(messages({ ...base, normalize: { mean: [0.5], std: [0.2, 0.2, 0.2] } })).toContain(
      'normalize.mean has 1 values for 3 channels',
    );
    expect(messages({ ...base, normalize: { mean: [0, 0, 0], std: [1, 0, 1] } })).toContain(
      'normalize.std values must be > 0',
    );
    expect(messages({ ...base, depth: 0 })).toContain('depth must be > 0');
    expect(messages({ ...base, width: 19.5 })).toContain('width must be an integer');
  });
});

describe('presets', () => {
  it('match the paper: ViT-T/S/B widths, depths and heads, decoder 128 x 2 x 16, patch by image size', () => {
    const t = modelConfigFromPreset('vit-t', 32);
    expect([t.width, t.depth, t.heads, t.patchSize]).toEqual([192, 12, 3, 2]);
    const s = modelConfigFromPreset('vit-s', 64);
    expect([s.width, s.depth, s.heads, s.patchSize]).toEqual([384, 12, 6, 4]);
    const b = modelConfigFromPreset('vit-b', 224);
    expect([b.width, b.depth, b.heads, b.patchSize]).toEqual([768, 12, 12, 16]);
    for (const c of [t, s, b]) {
      expect([c.decoderWidth, c.decoderDepth, c.decoderHeads, c.mlpRatio]).toEqual([128, 2, 16, 4]);
    }
  });

  it('has micro and small-cpu configurations and accepts overrides', () => {
    const micro = modelConfigFromPreset('micro');
    expect(micro).toMatchObject({ imageSize: 16, patchSize: 4, width: 32, depth: 2, heads: 2, decoderWidth: 32 });
    expect([micro.decoderDepth, micro.decoderHeads]).toEqual([1, 2]);
    const small = modelConfigFromPreset('small-cpu');
    expect(small).toMatchObject({ imageSize: 32, patchSize: 4, width: 64, depth: 4 });
    expect(modelConfigFromPreset('vit-s', 32, { patchSize: 4 }).patchSize).toBe(4);
    expect(
      modelConfigFromPreset('vit-s', 32, { normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } }).normalize,
    ).toEqual({
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
    });
    for (const p of MODEL_PRESETS) expect(describePreset(p).length).toBeGreaterThan(10);
  });

  it('refuses a size the preset cannot patch, and unknown presets', () => {
    expect(() => modelConfigFromPreset('micro', 18)).toThrow(/4 x 4 grid/);
    expect(() => modelConfigFromPreset('vit-t', 40)).toThrow(/patchSize explicitly/);
    expect(() => modelConfigFromPreset('vit-xl' as 'vit-t', 32)).toThrow();
  });
});
