import { describe, expect, it } from 'vitest';
import { FinetuneConfig } from '../../../src/shared/finetune-config';
import { ModelConfig, modelConfigFromPreset } from '../../../src/shared/model-config';
import { PretrainConfig } from '../../../src/shared/pretrain-config';

/** Issue 18's presets (ConvNeXt, Swin) and their shape rules; the tfjs engine refuses them by name. */

const TORCH_ONLY = 'runs on the PyTorch engine only: choose engine "torch"';
const base = {
  imageSize: 32,
  patchSize: 2,
  width: 16,
  depth: 6,
  heads: 1,
  decoderWidth: 32,
  decoderDepth: 1,
  decoderHeads: 2,
};

function messages(input: unknown): string[] {
  const result = ModelConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => i.message);
}

describe('ConvNeXt and Swin presets', () => {
  it('resolve to timm sizes and the micro sizes', () => {
    expect(modelConfigFromPreset('convnext-t')).toMatchObject({
      imageSize: 224,
      patchSize: 4,
      encoder: { kind: 'convnext', depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
    });
    expect(modelConfigFromPreset('swin-b')).toMatchObject({
      imageSize: 224,
      patchSize: 4,
      width: 128,
      encoder: { kind: 'swin', depths: [2, 2, 18, 2], stageHeads: [4, 8, 16, 32], windowSize: 7 },
    });
    expect(modelConfigFromPreset('convnext-micro')).toMatchObject({ imageSize: 32, patchSize: 1 });
    expect(modelConfigFromPreset('swin-micro')).toMatchObject({ imageSize: 32, patchSize: 2, width: 16 });
  });

  it('derive width, depth and heads from their stages (ConvNeXt: last stage width; Swin: first stage heads)', () => {
    const sizes = (preset: 'convnext-micro' | 'convnext-t' | 'swin-micro' | 'swin-b') => {
      const c = modelConfigFromPreset(preset);
      return [c.width, c.depth, c.heads, c.decoderWidth, c.decoderDepth, c.decoderHeads, c.imageSize, c.patchSize];
    };
    expect(sizes('convnext-micro')).toEqual([128, 4, 1, 32, 1, 1, 32, 1]);
    expect(sizes('convnext-t')).toEqual([768, 18, 1, 512, 1, 1, 224, 4]);
    expect(sizes('swin-micro')).toEqual([16, 6, 1, 32, 1, 2, 32, 2]);
    expect(sizes('swin-b')).toEqual([128, 24, 4, 128, 2, 16, 224, 4]);
  });

  it('are refused on the tfjs engine, for pre-training and fine-tuning from scratch, naming the PyTorch engine', () => {
    const dataset = { kind: 'builtin', size: 32, imageSize: 32 };
    for (const model of ['convnext-micro', 'swin-micro', 'convnext-t', 'swin-b'] as const) {
      const pretrain = PretrainConfig.safeParse({ dataset, model });
      expect(pretrain.success, model).toBe(false);
      expect(pretrain.error?.issues.map((i) => i.message).join('\n')).toContain(TORCH_ONLY);
      expect(PretrainConfig.safeParse({ dataset, model, engine: { name: 'torch' } }).success, model).toBe(true);
      const finetune = FinetuneConfig.safeParse({ method: 'pgd-at', source: { kind: 'scratch', model }, dataset });
      expect(finetune.success, model).toBe(false);
      expect(finetune.error?.issues.map((i) => i.message).join('\n')).toContain(TORCH_ONLY);
    }
  });

  it('refuse shapes the encoders cannot take, saying what to change', () => {
    expect(
      messages({ ...base, patchSize: 1, encoder: { kind: 'convnext', depths: [1, 1, 1], dims: [8, 16] } }),
    ).toContain('encoder.depths has 3 stages but encoder.dims 2: give one width per stage');
    expect(
      messages({
        ...base,
        imageSize: 48,
        patchSize: 4,
        encoder: { kind: 'convnext', depths: [1, 1, 1, 1], dims: [8, 8, 8, 8] },
      }),
    ).toContain(
      "ConvNeXt's last stage has 32 px cells (stem patchSize 4, halved 3 times); imageSize 48 must be a multiple of it",
    );
    expect(messages({ ...base, encoder: { kind: 'swin', depths: [2, 2], stageHeads: [1] } })).toContain(
      'encoder.depths has 2 stages but encoder.stageHeads 1: give one head count per stage',
    );
    expect(
      messages({ ...base, imageSize: 24, encoder: { kind: 'swin', depths: [2, 2, 2, 2], stageHeads: [1, 1, 1, 1] } }),
    ).toContain('Swin halves its 12 x 12 token grid 3 times; imageSize / patchSize must be a multiple of 8');
    expect(messages({ ...base, encoder: { kind: 'swin', depths: [2, 2], stageHeads: [1, 3] } })).toContain(
      'Swin stage 2 has width 32 (width x 2^1), not divisible by its 3 heads',
    );
    expect(
      messages({ ...base, encoder: { kind: 'swin', depths: [2, 2, 2], stageHeads: [1, 2, 4], windowSize: 4 } }),
    ).toEqual([]);
  });
});
