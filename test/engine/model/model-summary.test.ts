import { describe, expect, it } from 'vitest';
import { formatModelPresets, modelPresetRows } from '../../../src/cli/commands/doctor';
import { classifierParamSpecs, encoderFor } from '../../../src/engine/model';
import { TORCH_ONLY_ENCODERS } from '../../../src/shared/encoder-config';
import { MODEL_PRESETS, ModelConfig, modelConfigFromPreset } from '../../../src/shared/model-config';
import { formatModelSummary, modelSummary } from '../../../src/shared/model-summary';

function specCount(config: ModelConfig, classes: number): number {
  return classifierParamSpecs(config, classes).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

describe('model summary', () => {
  it("counts exactly the tfjs engine's classifier parameters, for every preset the engine runs", () => {
    let checked = 0;
    for (const preset of MODEL_PRESETS) {
      for (const size of [undefined, 32]) {
        const config = modelConfigFromPreset(preset, size);
        try {
          encoderFor(config);
        } catch {
          continue; // another engine's encoder
        }
        expect(modelSummary(config, 10)?.parameters, `${preset} at ${config.imageSize} px`).toBe(specCount(config, 10));
        checked++;
      }
    }
    // Every preset at two sizes, but ConvNeXt's and Swin's (PyTorch engine only).
    const onTfjs = MODEL_PRESETS.filter((p) => !TORCH_ONLY_ENCODERS.includes(modelConfigFromPreset(p).encoder.kind));
    expect(checked).toBe(2 * onTfjs.length);
  });

  it('matches the published size of ViT-S/16 at 224 px (DeiT-S: 22 M parameters, 4.6 GFLOPs)', () => {
    const s = modelSummary(modelConfigFromPreset('vit-s', 224));
    // timm's 22,050,664 counts the 197 x 384 position table, a fixed sin-cos table here.
    expect(s?.parameters).toBe(22_050_664 - 197 * 384);
    expect((s?.flopsPerImage ?? 0) / 1e9).toBeCloseTo(4.6, 1);
    expect(formatModelSummary(modelConfigFromPreset('vit-s', 224))).toBe(
      '22.0 M parameters, 4.60 GFLOPs per 224 px image (1000 classes)',
    );
  });

  it('adds the ConvStem: its convolutions in place of the patch embedding', () => {
    const plain = modelConfigFromPreset('vit-s', 224);
    const stem = modelConfigFromPreset('convstem-vit-s', 224);
    const plainSize = modelSummary(plain);
    const stemSize = modelSummary(stem);
    // 3x3 convs 3->48->96->192->384 (bias + LayerNorm each), 1x1 384->384 (bias); minus the 768 x 384 patch linear.
    const convs = [
      [3, 48],
      [48, 96],
      [96, 192],
      [192, 384],
    ].reduce((n, [i, o]) => n + 9 * (i ?? 0) * (o ?? 0) + 3 * (o ?? 0), 0);
    expect((stemSize?.parameters ?? 0) - (plainSize?.parameters ?? 0)).toBe(
      convs + 384 * 384 + 384 - (768 * 384 + 384),
    );
    // Output sides 112, 56, 28, 14; the 1x1 projection on 14 x 14.
    const stemFlops =
      112 * 112 * 9 * 3 * 48 +
      56 * 56 * 9 * 48 * 96 +
      28 * 28 * 9 * 96 * 192 +
      14 * 14 * 9 * 192 * 384 +
      196 * 384 * 384;
    expect((stemSize?.flopsPerImage ?? 0) - (plainSize?.flopsPerImage ?? 0)).toBe(stemFlops - 196 * 768 * 384);
  });

  it('`mimir doctor --models` lists every preset with its encoder, size and engines', () => {
    const rows = modelPresetRows();
    expect(rows.map((r) => r.preset)).toEqual([...MODEL_PRESETS]);
    expect(rows.find((r) => r.preset === 'convstem-micro')).toMatchObject({
      encoder: { kind: 'convstem', stemChannels: [8, 16] },
      engines: ['tfjs', 'torch'],
    });
    const text = formatModelPresets();
    expect(text).toMatch(
      /^ {2}convstem-vit-s +convstem, width 384, depth 12, 6 heads, patch 16; .* parameters, .*FLOPs/m,
    );
  });
});

describe('model summary of ConViT and CaiT', () => {
  it("counts timm's convit_small and cait_s24_224 exactly and timm's published GMACs (5.76 and 9.35) to 0.05", () => {
    const convit = modelSummary(modelConfigFromPreset('convit-s'));
    const cait = modelSummary(modelConfigFromPreset('cait-s24'));
    expect(convit?.parameters).toBe(27_777_322);
    expect(cait?.parameters).toBe(46_916_200);
    console.info(`convit-s ${convit?.flopsPerImage}, cait-s24 ${cait?.flopsPerImage} multiply-adds per 224 px image`);
    expect((convit?.flopsPerImage ?? 0) / 1e9).toBeCloseTo(5.76, 1);
    expect((cait?.flopsPerImage ?? 0) / 1e9).toBeCloseTo(9.35, 1);
  });
});
