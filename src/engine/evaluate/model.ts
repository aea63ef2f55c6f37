import * as tf from '@tensorflow/tfjs-core';
import { miBlockIndex, type MiEstimator, type MiOptionsInput } from '@shared/mi-config';
import type { Classifier } from '../attacks';
import { loadClassifierCheckpoint, type ClassifierCheckpoint } from '../finetune/classifier-checkpoint';
import { classScores } from '../finetune/outputs';
import { mutualInformation } from '../mi/mutual-information';
import { classifierForward } from '../model';

/**
 * A fine-tuned classifier as the evaluation attacks it: `classify` gives class scores (DBAT's merged
 * outputs), `features` the backbone's features as the authors' forward_features: every token after
 * the last block, [N, 1 + L, D] with cls, before pooling, fc_norm and head (spec section 6).
 *
 * PGD-MI and PGD-fea need both for the same input inside one gradient. `classify` remembers the
 * features of its last input, and `features` returns them when asked about that same tensor while
 * they are alive (inside the same tf.grad or tidy), so the objective costs one forward pass, not two.
 * Both must be called inside a tf.tidy or tf.grad scope, as every attack does.
 */
export class EvaluatedClassifier {
  private last: { input: tf.Tensor4D; features: tf.Tensor3D; tapped?: tf.Tensor3D | undefined } | null = null;
  /** The block (0-based) whose tokens `classify` also keeps, for PGD-MI at block k; null: none. */
  private tapBlock: number | null = null;

  constructor(readonly checkpoint: ClassifierCheckpoint) {}

  static async load(path: string): Promise<EvaluatedClassifier> {
    return new EvaluatedClassifier(await loadClassifierCheckpoint(path));
  }

  readonly classify: Classifier = (x) => {
    const c = this.checkpoint;
    const out = classifierForward(c.params, c.modelConfig, x, { trainParams: false }, this.tapBlock ?? undefined);
    this.last = { input: x, features: out.tokens, tapped: out.tapped };
    return classScores(out.logits, c.method, c.numClasses, c.merge);
  };

  /** Every token after block `index` (0-based), as `features` reads the last block's. */
  private blockFeatures(x: tf.Tensor4D, index: number): tf.Tensor3D {
    const last = this.last;
    if (last && last.input === x && last.tapped && !last.tapped.isDisposed && this.tapBlock === index) {
      return last.tapped;
    }
    const c = this.checkpoint;
    const tapped = classifierForward(c.params, c.modelConfig, x, { trainParams: false }, index).tapped;
    if (!tapped) throw new Error(`internal: no tokens after block ${index + 1}`);
    return tapped;
  }

  readonly features = (x: tf.Tensor4D): tf.Tensor3D => {
    const last = this.last;
    if (last && last.input === x && !last.features.isDisposed) return last.features;
    const c = this.checkpoint;
    return classifierForward(c.params, c.modelConfig, x, { trainParams: false }).tokens;
  };

  /**
   * PGD-MI's MI term: I(x + delta, features(x + delta)), each flattened per sample; with `block`
   * (from 1), the tokens after that block instead of the last's. MI is a batch
   * statistic: a lone example has none (0), and its objective is plain CE.
   */
  featureMi(estimator: MiEstimator, options: MiOptionsInput = {}, block?: number): (xAdv: tf.Tensor4D) => tf.Scalar {
    const index =
      block === undefined ? null : miBlockIndex({ block }, this.checkpoint.modelConfig.depth, 'PGD-MI block');
    this.tapBlock = index === this.checkpoint.modelConfig.depth - 1 ? null : index;
    const tap = this.tapBlock;
    const features = (xa: tf.Tensor4D) => (tap === null ? this.features(xa) : this.blockFeatures(xa, tap));
    return (xa) => (xa.shape[0] < 2 ? tf.scalar(0) : mutualInformation(estimator, xa, features(xa), options));
  }

  dispose(): void {
    this.last = null;
    this.checkpoint.dispose();
  }
}
