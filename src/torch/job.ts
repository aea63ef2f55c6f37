import { builtinSize, type DatasetSource } from '../shared/dataset-config';
import { modelConfigFromPreset, type ModelConfig } from '../shared/model-config';
import { PretrainConfig } from '../shared/pretrain-config';

/**
 * The job file the PyTorch engine reads (python3 -m mimir_torch.run --config job.json): the run config
 * validated by the same zod schema as the tfjs engine's and filled with every default here, with what
 * the tfjs engine resolves at run time resolved too (the model preset for the dataset's image size,
 * the built-in set's size), so Python never re-derives a default.
 */
export interface TorchJob {
  kind: 'pretrain';
  config: PretrainConfig & { model: ModelConfig };
  /** --epochs with --resume: raise the stored run's total. */
  epochsOverride?: number;
}

/** Datasets the PyTorch engine reads, and their image size. */
function torchDataset(source: DatasetSource): { dataset: DatasetSource; imageSize: number } {
  switch (source.kind) {
    case 'builtin':
      return { dataset: { ...source, size: builtinSize(source) }, imageSize: source.imageSize };
    case 'cifar10':
      return { dataset: source, imageSize: 32 };
    default:
      throw new Error(
        `The PyTorch engine reads the built-in set and CIFAR-10 so far, not '${source.kind}': use --engine tfjs for it.`,
      );
  }
}

export function pretrainJob(configInput: unknown, epochsOverride?: number): TorchJob {
  const parsed = PretrainConfig.safeParse(configInput);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new Error(`Invalid pre-training config: ${issues}`);
  }
  const config = parsed.data;
  const { dataset, imageSize } = torchDataset(config.dataset);
  const model = typeof config.model === 'string' ? modelConfigFromPreset(config.model, imageSize) : config.model;
  if (model.imageSize !== imageSize) {
    throw new Error(
      `The model expects ${model.imageSize} px images but the dataset has ${imageSize} px ones; set model.imageSize or the dataset's imageSize.`,
    );
  }
  return { kind: 'pretrain', config: { ...config, model, dataset }, ...(epochsOverride ? { epochsOverride } : {}) };
}
