import * as tf from '@tensorflow/tfjs-core';
import { CHECKPOINT_MODEL_FILE, type CheckpointManifest } from '@shared/checkpoint';
import { FinetuneRecord, headOutputs, type DbatMerge, type FinetuneMethod } from '@shared/finetune-config';
import { ModelConfig } from '@shared/model-config';
import { CheckpointError, compareShapes, loadCheckpoint, shapesOf } from '../checkpoint';
import { classifierForward, classifierParamSpecs, disposeParams, type ParamMap } from '../model';
import { resolveCheckpointPath } from './checkpoint-path';
import { classScores } from './outputs';

/**
 * A fine-tuned classifier read from a `mimir finetune` checkpoint, ready to evaluate and attack.
 * `predict` is the model in evaluation mode (no drop path, weights as constants so an attack's
 * gradient is computed for the images only): images [N, H, W, 3] in [0, 1] -> scores
 * [N, numClasses], DBAT's 2C outputs already merged (see mergeDbatLogits). The caller disposes it.
 */
export interface ClassifierCheckpoint {
  /** The checkpoint directory actually read. */
  path: string;
  manifest: CheckpointManifest;
  /** The fine-tuning run's config as stored, with the dataset's classes. */
  record: FinetuneRecord;
  params: ParamMap;
  modelConfig: ModelConfig;
  numClasses: number;
  classNames: string[];
  method: FinetuneMethod;
  /** Outputs of the head: numClasses, or 2 * numClasses for DBAT. */
  outputs: number;
  /** How DBAT's two outputs per class merge (the record's dbat.merge); unused for other methods. */
  merge: DbatMerge;
  predict: (x: tf.Tensor4D) => tf.Tensor2D;
  dispose(): void;
}

function issues(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/**
 * Load a fine-tuning checkpoint: a checkpoint folder, a run's checkpoints/ folder or the run folder
 * (its newest good checkpoint). Every file's checksum is verified; a pre-training checkpoint or a
 * classifier whose tensors do not match its stored config is refused with the reason.
 */
export async function loadClassifierCheckpoint(checkpointPath: string): Promise<ClassifierCheckpoint> {
  const dir = await resolveCheckpointPath(checkpointPath);
  const loaded = await loadCheckpoint(dir);
  const { manifest, weights } = loaded;
  if (manifest.kind !== 'finetune') {
    throw new CheckpointError(
      dir,
      'is a pre-training checkpoint (a masked autoencoder, no classifier head): fine-tune it first (mimir finetune --from it)',
    );
  }
  const record = FinetuneRecord.safeParse(manifest.runConfig);
  if (!record.success) {
    throw new CheckpointError(dir, `its runConfig is not a fine-tuning record (${issues(record.error)})`);
  }
  const modelConfig = ModelConfig.safeParse(manifest.modelConfig);
  if (!modelConfig.success) {
    throw new CheckpointError(dir, `its modelConfig is not a model configuration (${issues(modelConfig.error)})`);
  }
  const { method, numClasses, classNames } = record.data;
  const outputs = headOutputs(method, numClasses);
  const specs = classifierParamSpecs(modelConfig.data, outputs);
  const expected = new Map(specs.map((spec) => [spec.name, spec.shape]));
  const problems = compareShapes(CHECKPOINT_MODEL_FILE, shapesOf(weights), expected);
  if (problems.length > 0) throw new CheckpointError(dir, problems.join('; '));

  const params: ParamMap = new Map();
  for (const spec of specs) {
    const weight = weights.get(spec.name);
    if (!weight) throw new CheckpointError(dir, `internal: "${spec.name}" vanished after the shape check`);
    const value = tf.tensor(weight.data, weight.shape, 'float32');
    params.set(spec.name, tf.variable(value, false));
    value.dispose();
  }
  const config = modelConfig.data;
  const merge = record.data.dbat.merge;
  return {
    path: dir,
    manifest,
    record: record.data,
    params,
    modelConfig: config,
    numClasses,
    classNames,
    method,
    outputs,
    merge,
    predict: (x) =>
      tf.tidy(() => {
        const logits = classifierForward(params, config, x, { trainParams: false }).logits;
        return classScores(logits, method, numClasses, merge);
      }),
    dispose: () => disposeParams(params),
  };
}
