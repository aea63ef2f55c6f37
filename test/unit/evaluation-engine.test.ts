import { describe, expect, it } from 'vitest';
import { encoderKindOf, evaluationEngineFor } from '../../src/shared/evaluation-engine';

describe('which engine evaluates a checkpoint', () => {
  it('reads the encoder kind from a modelConfig: a plain ViT where it names none, null where unreadable', () => {
    expect(encoderKindOf({ width: 64, encoder: { kind: 'convnext', dims: [8] } })).toBe('convnext');
    expect(encoderKindOf({ width: 64 })).toBe('vit');
    expect(encoderKindOf({ encoder: { dims: [8] } })).toBeNull();
    expect(encoderKindOf(null)).toBeNull();
  });

  it('picks PyTorch for ConvNeXt and Swin, TensorFlow.js otherwise, and what the request asks for first', () => {
    expect(evaluationEngineFor('convnext').engine).toBe('torch');
    expect(evaluationEngineFor('swin').line).toMatch(
      /^Evaluated on the PyTorch engine: the swin encoder runs there only/,
    );
    expect(evaluationEngineFor('vit').engine).toBe('tfjs');
    expect(evaluationEngineFor(null).engine).toBe('tfjs');
    expect(evaluationEngineFor('vit', 'torch')).toMatchObject({
      engine: 'torch',
      line: expect.stringMatching(/as asked/),
    });
    expect(evaluationEngineFor('cait', 'tfjs').engine).toBe('tfjs');
  });
});
