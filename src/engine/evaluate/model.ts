import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../attacks';
import { loadClassifierCheckpoint, type ClassifierCheckpoint } from '../finetune/classifier-checkpoint';
import { classScores } from '../finetune/outputs';
import { classifierForward } from '../model';

/**
 * A fine-tuned classifier as the evaluation attacks it: `classify` gives class scores (DBAT's merged
 * outputs), `features` the backbone's features (the pooled, fc_norm-ed tokens the head sees).
 *
 * PGD-MI and PGD-fea need both for the same input inside one gradient. `classify` remembers the
 * features of its last input, and `features` returns them when asked about that same tensor while
 * they are alive (inside the same tf.grad or tidy), so the objective costs one forward pass, not two.
 * Both must be called inside a tf.tidy or tf.grad scope, as every attack does.
 */
export class EvaluatedClassifier {
  private last: { input: tf.Tensor4D; features: tf.Tensor2D } | null = null;

  constructor(readonly checkpoint: ClassifierCheckpoint) {}

  static async load(path: string): Promise<EvaluatedClassifier> {
    return new EvaluatedClassifier(await loadClassifierCheckpoint(path));
  }

  readonly classify: Classifier = (x) => {
    const c = this.checkpoint;
    const out = classifierForward(c.params, c.modelConfig, x, { trainParams: false });
    this.last = { input: x, features: out.features };
    return classScores(out.logits, c.method, c.numClasses, c.merge);
  };

  readonly features = (x: tf.Tensor4D): tf.Tensor2D => {
    const last = this.last;
    if (last && last.input === x && !last.features.isDisposed) return last.features;
    const c = this.checkpoint;
    return classifierForward(c.params, c.modelConfig, x, { trainParams: false }).features;
  };

  dispose(): void {
    this.last = null;
    this.checkpoint.dispose();
  }
}
