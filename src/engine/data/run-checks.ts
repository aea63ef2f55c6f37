import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { describeIssues } from '@shared/config-object';
import { DatasetSource, ExtraData } from '@shared/dataset-config';
import type { JobKind } from '@shared/engine-protocol';
import { ModelConfig, ModelPreset, modelConfigFromPreset } from '@shared/model-config';
import type { Dataset } from './dataset';
import { openDataset } from './open-dataset';
import { errorMessage } from '@shared/unknown-value';

/** A model as run configs give it: a preset sized for the dataset's images, or a full configuration. */
export type RunModel = ModelPreset | ModelConfig;

/**
 * The model of a run on `dataset`'s images: the preset sized for them, or the given configuration
 * when its image size is theirs. Throws a message that says what does not fit and what to change.
 */
export function modelForDataset(model: RunModel, dataset: Pick<Dataset, 'imageSize'>): ModelConfig {
  if (typeof model !== 'string') {
    if (model.imageSize !== dataset.imageSize) {
      throw new Error(
        `The model expects ${model.imageSize} px images but the dataset has ${dataset.imageSize} px ones; set model.imageSize or the dataset's imageSize.`,
      );
    }
    return model;
  }
  try {
    return modelConfigFromPreset(model, dataset.imageSize);
  } catch (error) {
    const why = error instanceof z.ZodError ? describeIssues(error, 'model') : errorMessage(error);
    throw new Error(
      `Model ${model} does not fit the dataset's ${dataset.imageSize} px images (${why}); choose an image size the patch grid divides, or give a model config.`,
      { cause: error },
    );
  }
}

/** Why a run of `kind` cannot use `dataset` (a classifier needs two classes at least), or null. */
export function datasetProblem(kind: JobKind, dataset: Dataset): string | null {
  if ((kind === 'finetune' || kind === 'evaluate') && dataset.numClasses < 2) {
    const only = dataset.classNames[0] !== undefined ? ` ("${dataset.classNames[0]}")` : '';
    return `${dataset.description.summary} has ${dataset.numClasses} class${only}; a classifier needs at least 2: give the folder one sub-folder per class.`;
  }
  return null;
}

/**
 * What a new run's dataset must satisfy, checked when the run is created (runs.create, which the
 * New-run form's Start calls) so that it is refused before it is queued: the dataset opens (a missing
 * folder is named), it has the classes a classifier needs, and the model's patch size divides its
 * image size. The trainers check the same before training (the CLI's path). `config` is parsed.
 */
export async function checkRunDataset(kind: JobKind, config: Record<string, unknown>): Promise<void> {
  const source = DatasetSource.safeParse(config.dataset);
  if (!source.success) return; // the config's schema has said what is wrong
  const dataset = await openDataset(source.data);
  const problem = datasetProblem(kind, dataset);
  if (problem !== null) throw new Error(problem);
  const model = runModel(kind, config);
  if (model !== null) modelForDataset(model, dataset);
  const extra = ExtraData.safeParse(config.extraData);
  if (extra.success && !(await isFile(extra.data.path))) {
    // The archive itself (up to 2 GiB) is read and checked by the trainer, not on the app's main process.
    throw new Error(`extraData: ${extra.data.path} does not exist; give the path of the .npz file.`);
  }
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The model a run builds itself (pre-training, fine-tuning from scratch); null when it comes from a checkpoint. */
function runModel(kind: JobKind, config: Record<string, unknown>): RunModel | null {
  const candidate =
    kind === 'pretrain'
      ? config.model
      : kind === 'finetune' && isScratch(config.source)
        ? config.source.model
        : undefined;
  const parsed = z.union([ModelPreset, ModelConfig]).safeParse(candidate);
  return parsed.success ? parsed.data : null;
}

function isScratch(source: unknown): source is { kind: 'scratch'; model: unknown } {
  return typeof source === 'object' && source !== null && (source as { kind?: unknown }).kind === 'scratch';
}
