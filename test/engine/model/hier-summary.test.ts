import { describe, expect, it } from 'vitest';
import { modelConfigFromPreset } from '../../../src/shared/model-config';
import { formatModelSummary, modelSummary } from '../../../src/shared/model-summary';

/**
 * ConvNeXt and Swin sizes (issue 18) against timm's published ones: convnext_tiny 28,589,128 parameters
 * and 4.47 GMACs, swin_base_patch4_window7_224 87,768,224 and 15.47 GMACs at 224 px. (The micro presets'
 * counts are checked against the PyTorch modules in test/torch/hier-encoders.test.ts.)
 */
describe('ConvNeXt and Swin model summaries', () => {
  it("convnext-t is timm's convnext_tiny", () => {
    const s = modelSummary(modelConfigFromPreset('convnext-t'));
    expect(s?.parameters).toBe(28_589_128);
    // 4.456: timm's 4.47 also counts the norms' and activations' few operations.
    expect((s?.flopsPerImage ?? 0) / 1e9).toBeCloseTo(4.47, 1);
  });

  it("swin-b is timm's swin_base_patch4_window7_224", () => {
    const s = modelSummary(modelConfigFromPreset('swin-b'));
    expect(s?.parameters).toBe(87_768_224);
    expect((s?.flopsPerImage ?? 0) / 1e9).toBeCloseTo(15.47, 1);
    expect(formatModelSummary(modelConfigFromPreset('swin-b'))).toMatch(
      /^87\.8 M parameters, 15\.\d GFLOPs per 224 px/,
    );
  });
});
