import * as tf from '@tensorflow/tfjs-core';
import { CHECKPOINT_MODEL_FILE } from '@shared/checkpoint';
import type { FinetuneSource } from '@shared/finetune-config';
import { ModelConfig, type ModelPreset } from '@shared/model-config';
import { errorMessage } from '@shared/unknown-value';
import { CheckpointError, compareShapes, loadCheckpoint, shapesOf } from '../checkpoint';
import {
  classifierParamSpecs,
  classifierParamsFromEncoder,
  disposeParams,
  initClassifierParams,
  maeParamSpecs,
  type ParamMap,
} from '../model';
import type { Rng } from '../rng';
import { resolveCheckpointPath } from './checkpoint-path';
import { modelForDataset } from '../data/run-checks';

/** A fine-tuning start that cannot be made (bad checkpoint, size mismatch); the message says why. */
export class FinetuneSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FinetuneSourceError';
  }
}

export interface InitialClassifier {
  params: ParamMap;
  modelConfig: ModelConfig;
  /** The pre-training checkpoint the encoder came from; null from scratch. */
  pretrained: { path: string; epoch: number; step: number; runConfig: unknown } | null;
}

/** The classifier's model config from a scratch source's preset or config, sized for the dataset's images. */
export function scratchModelConfig(model: ModelPreset | ModelConfig, imageSize: number): ModelConfig {
  try {
    return modelForDataset(model, { imageSize });
  } catch (error) {
    throw new FinetuneSourceError(errorMessage(error));
  }
}

/**
 * The classifier a fine-tuning run starts from. From a pre-training checkpoint: its encoder's
 * weights (cls_token, patch_embed, blocks) copied exactly, fc_norm and the head fresh (head weights
 * N(0, headInitStd), from `rng`); MAE's final norm and decoder are dropped. From scratch: every
 * parameter freshly initialised (the End2End baseline).
 */
export async function initialClassifier(
  source: FinetuneSource,
  imageSize: number,
  outputs: number,
  rng: Rng,
  headInitStd: number,
): Promise<InitialClassifier> {
  if (source.kind === 'scratch') {
    const modelConfig = scratchModelConfig(source.model, imageSize);
    return { params: initClassifierParams(modelConfig, outputs, rng, { headInitStd }), modelConfig, pretrained: null };
  }
  let dir: string;
  try {
    dir = await resolveCheckpointPath(source.checkpoint);
  } catch (error) {
    throw new FinetuneSourceError(`--from ${source.checkpoint}: ${errorMessage(error)}`);
  }
  const loaded = await loadCheckpoint(dir);
  const { manifest } = loaded;
  if (manifest.kind !== 'pretrain') {
    throw new FinetuneSourceError(
      `${dir} is a fine-tuning checkpoint (it already has a classifier head); fine-tuning starts from a pre-training checkpoint (the output of mimir pretrain). To continue a fine-tuning run, resume it: mimir finetune --resume <its output folder>.`,
    );
  }
  const parsed = ModelConfig.safeParse(manifest.modelConfig);
  if (!parsed.success) throw new CheckpointError(dir, 'its modelConfig is not a model configuration');
  const modelConfig = parsed.data;
  if (modelConfig.imageSize !== imageSize) {
    throw new FinetuneSourceError(
      `${dir} was pre-trained on ${modelConfig.imageSize} px images but the dataset has ${imageSize} px ones; fine-tune on images of the pre-training size.`,
    );
  }
  const expected = new Map(maeParamSpecs(modelConfig).map((spec) => [spec.name, spec.shape]));
  const problems = compareShapes(CHECKPOINT_MODEL_FILE, shapesOf(loaded.weights), expected);
  if (problems.length > 0) throw new CheckpointError(dir, problems.join('; '));

  const backbone = new Set(
    classifierParamSpecs(modelConfig, outputs)
      .map((spec) => spec.name)
      .filter((name) => !name.startsWith('fc_norm.') && !name.startsWith('head.')),
  );
  const encoder: ParamMap = new Map();
  try {
    for (const name of backbone) {
      const weight = loaded.weights.get(name);
      if (!weight) throw new CheckpointError(dir, `lacks the encoder parameter "${name}"`);
      const value = tf.tensor(weight.data, weight.shape, 'float32');
      encoder.set(name, tf.variable(value, false));
      value.dispose();
    }
    const params = classifierParamsFromEncoder(encoder, modelConfig, outputs, rng, { headInitStd });
    return {
      params,
      modelConfig,
      pretrained: { path: dir, epoch: manifest.epoch, step: manifest.step, runConfig: manifest.runConfig },
    };
  } finally {
    disposeParams(encoder);
  }
}
