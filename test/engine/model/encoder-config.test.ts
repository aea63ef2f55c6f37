import { describe, expect, it } from 'vitest';
import { PretrainConfig } from '../../../src/shared/pretrain-config';
import { ModelConfig, modelConfigFromPreset } from '../../../src/shared/model-config';
import { encoderFor } from '../../../src/engine/model';

const micro = {
  imageSize: 16,
  patchSize: 4,
  width: 32,
  depth: 2,
  heads: 2,
  decoderWidth: 32,
  decoderDepth: 1,
  decoderHeads: 2,
};

function messages(input: unknown): string[] {
  const result = ModelConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => i.message);
}

describe('model.encoder', () => {
  it('defaults to the plain ViT, so configs and checkpoints written before encoders load unchanged', () => {
    expect(ModelConfig.parse(micro).encoder).toEqual({ kind: 'vit' });
    expect(modelConfigFromPreset('micro').encoder).toEqual({ kind: 'vit' });
  });

  it('fills each kind’s defaults', () => {
    expect(ModelConfig.parse({ ...micro, encoder: { kind: 'cait' } }).encoder).toEqual({
      kind: 'cait',
      classAttentionBlocks: 2,
      layerScaleInit: 1e-5,
      qkvBias: true, // timm's cait_s24_224
    });
    expect(ModelConfig.parse({ ...micro, encoder: { kind: 'convit', localUpToLayer: 1 } }).encoder).toEqual({
      kind: 'convit',
      localUpToLayer: 1,
      localityStrength: 1,
      qkvBias: false, // timm's convit_small
    });
    expect(ModelConfig.parse({ ...micro, encoder: { kind: 'convstem', stemChannels: [8, 16] } }).encoder).toEqual({
      kind: 'convstem',
      stemChannels: [8, 16],
      pretrainStem: true,
    });
  });

  it('rejects encoders that do not fit the model, saying what to change', () => {
    expect(messages({ ...micro, encoder: { kind: 'convit', localUpToLayer: 2 } })).toContain(
      'encoder.localUpToLayer 2 must be < depth 2 (the class token joins after the GPSA blocks)',
    );
    expect(messages({ ...micro, encoder: { kind: 'convstem', stemChannels: [8] } })).toContain(
      'encoder.stemChannels has 1 values; patchSize 4 needs 2 (one per stride-2 convolution, log2 of the patch size)',
    );
    expect(
      messages({ ...micro, imageSize: 18, patchSize: 6, encoder: { kind: 'convstem', stemChannels: [8] } }),
    ).toContain('a ConvStem needs a power-of-two patchSize of 2 or more (its stride-2 convolutions), got 6');
    expect(messages({ ...micro, encoder: { kind: 'resnet' } })).toContain(
      "encoder.kind must be one of 'vit', 'convstem', 'convit', 'cait', 'convnext', 'swin'",
    );
    expect(messages({ ...micro, encoder: { kind: 'convstem', stemChannels: [8, 16], pretrain: false } })).toContain(
      'unknown key "pretrain"; known keys: kind, stemChannels, pretrainStem',
    );
  });

  it('ConvStem presets get one convolution per factor of 2 of the patch size', () => {
    expect(modelConfigFromPreset('convstem-micro').encoder).toEqual({
      kind: 'convstem',
      stemChannels: [8, 16],
      pretrainStem: true,
    });
    expect(modelConfigFromPreset('convstem-vit-s').encoder).toMatchObject({ stemChannels: [48, 96, 192, 384] });
    expect(modelConfigFromPreset('convstem-vit-s', 32).encoder).toMatchObject({ stemChannels: [48] });
  });

  it('a PyTorch-only encoder is refused on the tfjs engine with a message naming the PyTorch engine', () => {
    const model = { ...micro, encoder: { kind: 'convnext', depths: [1, 1], dims: [8, 16] } };
    const base = { dataset: { kind: 'builtin', size: 32, imageSize: 16 }, model };
    const refused = PretrainConfig.safeParse(base);
    expect(refused.success).toBe(false);
    expect(refused.error?.issues.map((i) => i.message)).toContain(
      'The convnext encoder runs on the PyTorch engine only: choose engine "torch" (the run form\'s Engine field, or --engine torch on the command line)',
    );
    expect(PretrainConfig.safeParse({ ...base, engine: { name: 'torch' } }).success).toBe(true);
    expect(() => encoderFor(ModelConfig.parse(model))).toThrow(/runs on the PyTorch engine only/);
  });
});
