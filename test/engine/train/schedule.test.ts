import { describe, expect, it } from 'vitest';
import {
  layerIdForLrDecay,
  layerwiseLrScale,
  learningRateAt,
  learningRateAtIteration,
  scaledLearningRate,
} from '../../../src/engine/train/schedule';

describe('learning-rate schedule', () => {
  it('scales the base lr linearly with the batch size', () => {
    expect(scaledLearningRate(1.5e-4, 512)).toBeCloseTo(3e-4, 15); // MAE pre-training, CIFAR-10
    expect(scaledLearningRate(5e-3, 128)).toBeCloseTo(2.5e-3, 15); // fine-tuning, CIFAR-10
    expect(scaledLearningRate(1e-3, 256)).toBe(1e-3);
  });

  it('warms up linearly, then follows a half cosine to the minimum (values worked by hand)', () => {
    const config = { lr: 1, minLr: 0.1, warmupEpochs: 4, epochs: 12 };
    expect(learningRateAt(config, 0)).toBe(0);
    expect(learningRateAt(config, 1)).toBe(0.25);
    expect(learningRateAt(config, 3.5)).toBe(0.875);
    expect(learningRateAt(config, 4)).toBe(1); // peak: cos(0)
    // epoch 6: progress 2/8 = 1/4, 0.1 + 0.9 * 0.5 * (1 + cos(pi/4)) = 0.1 + 0.45 * 1.70711 = 0.868198
    expect(learningRateAt(config, 6)).toBeCloseTo(0.868198, 6);
    expect(learningRateAt(config, 8)).toBeCloseTo(0.55, 12); // halfway: the mean of lr and min lr
    // epoch 10: progress 3/4, 0.1 + 0.45 * (1 - 0.70711) = 0.231802
    expect(learningRateAt(config, 10)).toBeCloseTo(0.231802, 6);
    expect(learningRateAt(config, 12)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(config, 13)).toBeCloseTo(0.1, 12); // stays at the floor
    expect(learningRateAt({ lr: 2, warmupEpochs: 0, epochs: 2 }, 1)).toBeCloseTo(1, 12); // min lr defaults to 0
  });

  it('moves every iteration, at a fractional epoch as MAE does', () => {
    const config = { lr: 0.008, warmupEpochs: 2, epochs: 10 };
    // 4 iterations per epoch: iteration 1 of epoch 0 is epoch 0.25 -> 0.008 * 0.25 / 2
    expect(learningRateAtIteration(config, 0, 1, 4)).toBeCloseTo(0.001, 15);
    expect(learningRateAtIteration(config, 1, 2, 4)).toBeCloseTo(0.006, 15); // epoch 1.5
    // epoch 6 + 0 = progress 1/2 -> 0.004
    expect(learningRateAtIteration(config, 6, 0, 4)).toBeCloseTo(0.004, 15);
    const perIteration = Array.from({ length: 40 }, (_, i) =>
      learningRateAtIteration(config, Math.floor(i / 4), i % 4, 4),
    );
    // Rises at every iteration of the warm-up (8 iterations) and falls at every one after it.
    perIteration.slice(1, 9).forEach((lr, i) => expect(lr).toBeGreaterThan(perIteration[i]));
    perIteration.slice(9).forEach((lr, i) => expect(lr).toBeLessThan(perIteration[i + 8]));
  });

  it('assigns layer ids as MAE/BEiT param_groups_lrd', () => {
    const depth = 12;
    expect(layerIdForLrDecay('cls_token', depth)).toBe(0);
    expect(layerIdForLrDecay('pos_embed', depth)).toBe(0);
    expect(layerIdForLrDecay('patch_embed.proj.weight', depth)).toBe(0);
    expect(layerIdForLrDecay('blocks.0.attn.qkv.weight', depth)).toBe(1);
    expect(layerIdForLrDecay('blocks.11.mlp.fc2.bias', depth)).toBe(12);
    expect(layerIdForLrDecay('fc_norm.weight', depth)).toBe(13);
    expect(layerIdForLrDecay('norm.bias', depth)).toBe(13);
    expect(layerIdForLrDecay('head.weight', depth)).toBe(13);
  });

  it('scales lr by decay^(depth + 1 - layer id)', () => {
    const scale = layerwiseLrScale(2, 0.5);
    expect(scale('head.weight')).toBe(1);
    expect(scale('blocks.1.norm1.weight')).toBe(0.5);
    expect(scale('blocks.0.attn.proj.weight')).toBe(0.25);
    expect(scale('cls_token')).toBe(0.125);
    expect(scale('patch_embed.proj.bias')).toBe(0.125);
    // The paper's fine-tuning decay 0.65 on ViT-B (depth 12): the embeddings train at 0.65^13 of the head's rate.
    expect(layerwiseLrScale(12, 0.65)('pos_embed')).toBeCloseTo(0.0036972, 7);
  });
});
