import { CIFAR10_CLASSES } from '../engine/data/cifar10';
import {
  BUILTIN_CLASSES,
  builtinSize,
  type DatasetSource,
  type ExtraData,
  type TrainingFraction,
} from '../shared/dataset-config';
import { describeIssues } from '../shared/config-object';
import {
  FinetuneConfig,
  resolveFinetuneConfig,
  type FinetuneMethod,
  type FinetuneRecord,
} from '../shared/finetune-config';
import { modelConfigFromPreset, withDecoder, type ModelConfig } from '../shared/model-config';
import { PretrainConfig } from '../shared/pretrain-config';

/**
 * The job file the PyTorch engine reads (python3 -m mimir_torch.run --config job.json): the run config
 * validated by the same zod schema as the tfjs engine's and filled with every default here, with what
 * the tfjs engine resolves at run time resolved too (the model preset for the dataset's image size,
 * the built-in set's size), so Python never re-derives a default.
 */
export type TorchJob =
  | {
      kind: 'pretrain';
      config: PretrainConfig & { model: ModelConfig };
      /** --resume: continue the run's newest checkpoint (its stored config wins); none there is an error. */
      resume?: boolean;
      /** --epochs with --resume: raise the stored run's total. */
      epochsOverride?: number;
    }
  | {
      kind: 'finetune';
      /** The run's record (what its checkpoints store as runConfig) and, from scratch, the model. */
      config: { record: FinetuneRecord; model: ModelConfig | null } | null;
      resume?: boolean;
      epochsOverride?: number;
    };

/** Fine-tuning methods of the PyTorch engine (python/mimir_torch/config.py FINETUNE_METHODS_TORCH). */
export const TORCH_FINETUNE_METHODS: readonly FinetuneMethod[] = ['natural', 'pgd-at', 'fast-at', 'trades', 'mart'];

/** Datasets the PyTorch engine reads: the source with its size resolved, the image size and the classes. */
function torchDataset(source: DatasetSource): { dataset: DatasetSource; imageSize: number; classNames: string[] } {
  switch (source.kind) {
    case 'builtin':
      return {
        dataset: { ...source, size: builtinSize(source) },
        imageSize: source.imageSize,
        classNames: BUILTIN_CLASSES.slice(0, source.classes).map((c) => c.name),
      };
    case 'cifar10':
      return { dataset: source, imageSize: 32, classNames: [...CIFAR10_CLASSES] };
    default:
      throw new Error(
        `The PyTorch engine reads the built-in set and CIFAR-10 so far, not '${source.kind}': use --engine tfjs for it.`,
      );
  }
}

/** A share of the training set (Table XX) is drawn by the tfjs engine only so far. */
function refuseTrainFraction(share: TrainingFraction): void {
  if (share.fraction < 1) {
    throw new Error(
      `trainFraction ${share.fraction} runs on the tfjs engine only so far: set it to 1 or use --engine tfjs.`,
    );
  }
}

function refuseExtraData(extra: ExtraData | undefined): void {
  if (extra) {
    throw new Error(
      `extraData (${extra.path}) is mixed in by the tfjs engine only so far: leave extraData out or use --engine tfjs.`,
    );
  }
}

/** The job of `mimir <kind> --resume DIR --engine torch`: the stored checkpoint's config is used. */
export function resumeJob(kind: TorchJob['kind'], epochsOverride?: number): TorchJob {
  return kind === 'pretrain'
    ? { kind, config: pretrainJob({}).config, resume: true, ...(epochsOverride ? { epochsOverride } : {}) }
    : { kind, config: null, resume: true, ...(epochsOverride ? { epochsOverride } : {}) };
}

export function pretrainJob(configInput: unknown, epochsOverride?: number): TorchJob & { kind: 'pretrain' } {
  const parsed = PretrainConfig.safeParse(configInput);
  if (!parsed.success) {
    throw new Error(`Invalid pre-training config: ${describeIssues(parsed.error)}`);
  }
  const config = parsed.data;
  refuseTrainFraction(config.trainFraction);
  refuseExtraData(config.extraData);
  const { dataset, imageSize } = torchDataset(config.dataset);
  const model = typeof config.model === 'string' ? modelConfigFromPreset(config.model, imageSize) : config.model;
  if (model.imageSize !== imageSize) {
    throw new Error(
      `The model expects ${model.imageSize} px images but the dataset has ${imageSize} px ones; set model.imageSize or the dataset's imageSize.`,
    );
  }
  return {
    kind: 'pretrain',
    config: { ...config, model: withDecoder(model, config.decoder), dataset },
    ...(epochsOverride ? { epochsOverride } : {}),
  };
}

/**
 * A fine-tuning job: the config validated and resolved as the tfjs engine resolves it (threat eps and
 * base lr for the dataset), the record its checkpoints store (numClasses, classNames), the scratch
 * model sized for the dataset. What the PyTorch engine does not do yet is refused here, by name.
 */
export function finetuneJob(configInput: unknown, epochsOverride?: number): TorchJob {
  const parsed = FinetuneConfig.safeParse(configInput);
  if (!parsed.success) {
    throw new Error(`Invalid fine-tuning config: ${describeIssues(parsed.error)}`);
  }
  const config = resolveFinetuneConfig(parsed.data);
  refuseTrainFraction(config.trainFraction);
  refuseExtraData(config.extraData);
  if (!TORCH_FINETUNE_METHODS.includes(config.method)) {
    throw new Error(
      `The PyTorch engine fine-tunes with ${TORCH_FINETUNE_METHODS.join(', ')} so far, not ${config.method}: use --engine tfjs for it.`,
    );
  }
  if (config.randAugment !== null || config.mixup !== null) {
    throw new Error(
      'RandAugment and MixUp/CutMix run on the tfjs engine only so far: turn them off or use --engine tfjs.',
    );
  }
  const { dataset, imageSize, classNames } = torchDataset(config.dataset);
  let model: ModelConfig | null = null;
  if (config.source.kind === 'scratch') {
    const source = config.source.model;
    model = typeof source === 'string' ? modelConfigFromPreset(source, imageSize) : source;
    if (model.imageSize !== imageSize) {
      throw new Error(
        `The model expects ${model.imageSize} px images but the dataset has ${imageSize} px ones; set model.imageSize or the dataset's imageSize.`,
      );
    }
  }
  const record: FinetuneRecord = {
    ...config,
    dataset,
    numClasses: classNames.length,
    classNames,
  };
  return { kind: 'finetune', config: { record, model }, ...(epochsOverride ? { epochsOverride } : {}) };
}
