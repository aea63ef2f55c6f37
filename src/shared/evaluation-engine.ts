import { TORCH_ONLY_ENCODERS, type EncoderKind } from './encoder-config';

/** Which engine evaluates a checkpoint: 'tfjs' (this process, every attack) or 'torch' (PyTorch). */
export const EVALUATION_ENGINES = ['tfjs', 'torch'] as const;
export type EvaluationEngine = (typeof EVALUATION_ENGINES)[number];

/** The request attacks the PyTorch engine's evaluation runs; others are refused by name. */
export const TORCH_EVALUATION_ATTACKS = ['natural', 'pgd20', 'pgd', 'corruptions'] as const;

/** The encoder kind a checkpoint's modelConfig names (a plain ViT where it names none), or null if unreadable. */
export function encoderKindOf(modelConfig: unknown): string | null {
  if (typeof modelConfig !== 'object' || modelConfig === null) return null;
  const encoder = (modelConfig as { encoder?: unknown }).encoder;
  if (encoder === undefined) return 'vit';
  const kind = typeof encoder === 'object' && encoder !== null ? (encoder as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' ? kind : null;
}

/**
 * The engine that evaluates a checkpoint with this encoder: the one asked for, else PyTorch for the encoders
 * only it runs (ConvNeXt, Swin), else TensorFlow.js; with one sentence saying which and why (the form's line).
 */
export function evaluationEngineFor(
  encoderKind: string | null,
  requested?: EvaluationEngine,
): { engine: EvaluationEngine; line: string } {
  const torchOnly = encoderKind !== null && TORCH_ONLY_ENCODERS.includes(encoderKind as EncoderKind);
  const torchLine = `natural accuracy, PGD and corruptions only (${TORCH_EVALUATION_ATTACKS.join(', ')}), with the gradient-masking checks and flipped-example images`;
  if (requested === 'torch')
    return { engine: 'torch', line: `Evaluated on the PyTorch engine, as asked: ${torchLine}.` };
  if (torchOnly) {
    return {
      engine: 'torch',
      line: `Evaluated on the PyTorch engine: the ${encoderKind} encoder runs there only (${torchLine}).`,
    };
  }
  return { engine: 'tfjs', line: 'Evaluated on the TensorFlow.js engine (every attack).' };
}
