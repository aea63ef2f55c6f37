import * as tf from '@tensorflow/tfjs-core';
import { CHECKPOINT_MODEL_FILE, type CheckpointKind, type CheckpointManifest } from '@shared/checkpoint';
import type { DbatMerge } from '@shared/finetune-config';
import { ModelConfig } from '@shared/model-config';
import type { Classifier } from '../attacks';
import { CheckpointError, compareShapes, loadCheckpoint, readManifest, shapesOf } from '../checkpoint';
import { loadClassifierCheckpoint } from '../finetune/classifier-checkpoint';
import { resolveCheckpointPath } from '../finetune/checkpoint-path';
import { maeParamSpecs, type ParamMap } from '../model';
import type { WeightValues } from './directions';

/**
 * A checkpoint as a model to evaluate: its variables (fresh ones, owned by the caller), its config,
 * and the float32 values it was read from (the landscape's directions are normalised to them).
 * A fine-tuning checkpoint is read by the fine-tuning code (loadClassifierCheckpoint: its record,
 * classes and DBAT merge); a pre-training one is the masked autoencoder.
 */
export interface CheckpointModel {
  /** The checkpoint directory read (a run folder resolves to its newest good checkpoint). */
  path: string;
  kind: CheckpointKind;
  manifest: CheckpointManifest;
  config: ModelConfig;
  params: ParamMap;
  /** Fine-tuning: images -> class scores, reading the variables at every call (DBAT's outputs merged). */
  classifier: Classifier | null;
  /** Classes of a fine-tuned classifier; null for a pre-training checkpoint. */
  numClasses: number | null;
  /** How a DBAT head's 2C outputs merge into C scores; null for other heads. */
  dbatMerge: DbatMerge | null;
  weights: Map<string, WeightValues>;
}

function valuesOf(params: ParamMap): Map<string, WeightValues> {
  return new Map([...params].map(([name, v]) => [name, { shape: v.shape, data: Float32Array.from(v.dataSync()) }]));
}

/** A checkpoint directory, a folder of checkpoints or a run folder (its newest good checkpoint). */
export async function loadCheckpointModel(checkpoint: string): Promise<CheckpointModel> {
  const dir = await resolveCheckpointPath(checkpoint);
  const manifest = await readManifest(dir);
  if (manifest.kind === 'finetune') {
    const loaded = await loadClassifierCheckpoint(dir);
    return {
      path: loaded.path,
      kind: 'finetune',
      manifest: loaded.manifest,
      config: loaded.modelConfig,
      params: loaded.params,
      classifier: loaded.predict,
      numClasses: loaded.numClasses,
      dbatMerge: loaded.method === 'dbat' ? loaded.merge : null,
      weights: valuesOf(loaded.params),
    };
  }
  const loaded = await loadCheckpoint(dir, { kind: 'pretrain' });
  const parsed = ModelConfig.safeParse(loaded.manifest.modelConfig);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new CheckpointError(dir, `its modelConfig is not a model configuration (${issues})`);
  }
  const config = parsed.data;
  const specs = maeParamSpecs(config);
  const expected = new Map(specs.map((spec) => [spec.name, spec.shape]));
  const problems = compareShapes(CHECKPOINT_MODEL_FILE, shapesOf(loaded.weights), expected);
  if (problems.length > 0) throw new CheckpointError(dir, problems.join('; '));

  const params: ParamMap = new Map();
  const weights = new Map<string, WeightValues>();
  for (const spec of specs) {
    const weight = loaded.weights.get(spec.name);
    if (!weight) throw new CheckpointError(dir, `internal: "${spec.name}" vanished after the shape check`);
    const value = tf.tensor(weight.data, weight.shape, 'float32');
    params.set(spec.name, tf.variable(value, false));
    value.dispose();
    weights.set(spec.name, weight);
  }
  return {
    path: dir,
    kind: 'pretrain',
    manifest: loaded.manifest,
    config,
    params,
    classifier: null,
    numClasses: null,
    dbatMerge: null,
    weights,
  };
}
