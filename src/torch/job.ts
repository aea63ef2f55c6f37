import { CIFAR10_CLASSES } from '@engine/data/cifar10';
import type { HierExportJob } from '@engine/export/hier-encoders';
import type { PgdSpec } from '@shared/attack-config';
import {
  BUILTIN_CLASSES,
  builtinSize,
  type DatasetDescription,
  type DatasetSource,
  type ExtraData,
} from '@shared/dataset-config';
import type { EvaluationRequest } from '@shared/evaluation';
import type { CorruptionPlan } from '@engine/evaluate/plan';
import { describeIssues } from '@shared/config-object';
import { FinetuneConfig, resolveFinetuneConfig, type FinetuneRecord } from '@shared/finetune-config';
import { onTorchEngine } from '@shared/engine-choice';
import { modelConfigFromPreset, withDecoder, type ModelConfig } from '@shared/model-config';
import { PretrainConfig } from '@shared/pretrain-config';

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
    }
  | { kind: 'evaluate'; config: TorchEvaluationJob }
  /** A ConvNeXt or Swin export with timm's names (python/mimir_torch/export_run.py; src/torch/export.ts). */
  | { kind: 'export'; config: HierExportJob };

/** One attack of a PyTorch evaluation, planned here (plan.ts): natural accuracy, or PGD on CE in pixel units. */
export type TorchPlannedAttack = { key: string; label: string; implementation: string; inWorstCase: boolean } & (
  { kind: 'natural' } | { kind: 'pgd'; spec: PgdSpec }
);

/**
 * An evaluation on the PyTorch engine (python/mimir_torch/evaluate_run.py): the parsed request (its dataset
 * resolved as training's), the example ids and the dataset's description picked here, the attacks planned.
 */
export interface TorchEvaluationJob {
  request: EvaluationRequest;
  ids: number[];
  description: DatasetDescription;
  attacks: TorchPlannedAttack[];
  worstCaseImplementation: string;
  /**
   * The corruption table, when asked: its cells, and the folder of the corrupted batches' .npy files
   * (corruption-feed.ts; null on the machines that do not hold rank 0, which evaluates them).
   */
  corruptions: (CorruptionPlan & { implementation: string; folder: string | null }) | null;
}

/**
 * Datasets the PyTorch engine reads: the source with its size resolved, the image size and the classes
 * (an image folder's are listed here, as the tfjs engine lists them, so a missing or empty folder is
 * refused before Python starts).
 */
export async function torchDataset(
  source: DatasetSource,
): Promise<{ dataset: DatasetSource; imageSize: number; classNames: string[] }> {
  switch (source.kind) {
    case 'builtin':
      return {
        dataset: { ...source, size: builtinSize(source) },
        imageSize: source.imageSize,
        classNames: BUILTIN_CLASSES.slice(0, source.classes).map((c) => c.name),
      };
    case 'cifar10':
      return { dataset: source, imageSize: 32, classNames: [...CIFAR10_CLASSES] };
    case 'folder': {
      const { openImageFolder } = await import('@engine/data/image-folder');
      const folder = await openImageFolder(source);
      return { dataset: source, imageSize: source.imageSize, classNames: [...folder.classNames] };
    }
    default:
      throw new Error(
        `The PyTorch engine reads the built-in set, CIFAR-10 and image folders so far, not '${source.kind}': use --engine tfjs for it.`,
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
export async function resumeJob(kind: 'pretrain' | 'finetune', epochsOverride?: number): Promise<TorchJob> {
  return kind === 'pretrain'
    ? { kind, config: (await pretrainJob({})).config, resume: true, ...(epochsOverride ? { epochsOverride } : {}) }
    : { kind, config: null, resume: true, ...(epochsOverride ? { epochsOverride } : {}) };
}

/** The engine onTorchEngine added for validation is not part of the job's config. */
function withoutAddedEngine<T extends { engine?: unknown }>(parsed: T, input: unknown): T {
  if (typeof input === 'object' && input !== null && 'engine' in input) return parsed;
  const { engine: _added, ...rest } = parsed;
  return rest as T;
}

export async function pretrainJob(
  configInput: unknown,
  epochsOverride?: number,
): Promise<TorchJob & { kind: 'pretrain' }> {
  const parsed = PretrainConfig.safeParse(onTorchEngine(configInput));
  if (!parsed.success) {
    throw new Error(`Invalid pre-training config: ${describeIssues(parsed.error)}`);
  }
  const config = withoutAddedEngine(parsed.data, configInput);
  refuseExtraData(config.extraData);
  const { dataset, imageSize } = await torchDataset(config.dataset);
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
export async function finetuneJob(configInput: unknown, epochsOverride?: number): Promise<TorchJob> {
  const parsed = FinetuneConfig.safeParse(onTorchEngine(configInput));
  if (!parsed.success) {
    throw new Error(`Invalid fine-tuning config: ${describeIssues(parsed.error)}`);
  }
  const config = resolveFinetuneConfig(withoutAddedEngine(parsed.data, configInput));
  refuseExtraData(config.extraData);
  const { dataset, imageSize, classNames } = await torchDataset(config.dataset);
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
