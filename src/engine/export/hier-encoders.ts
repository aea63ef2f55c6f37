import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeIssues } from '@shared/config-object';
import { onTorchEngine } from '@shared/engine-choice';
import { headOutputs } from '@shared/finetune-config';
import type { ModelConfig } from '@shared/model-config';
import type { CheckpointManifest } from '@shared/checkpoint';
import { readSafetensorsHeader } from '../io/safetensors';
import { classifierRecord } from './checkpoint-source';
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  TimmExportRecord,
  TimmPretrainedCfg,
  pretrainedCfgOf,
  type ExportNaming,
} from './config';
import { configPathFor } from './targets';

/**
 * ConvNeXt and Swin exports: written by the PyTorch engine (python/mimir_torch/export_run.py, started by
 * src/torch/export.ts, which this layer cannot import: the caller passes it in as a `HierExporter`), since
 * only that engine builds these encoders. Their checkpoints hold timm's names and layouts already, so the
 * export is the encoder module's state dict: timm's ConvNeXt / SwinTransformer load it with strict=True.
 */

export const HIER_ARCHITECTURES = { convnext: 'convnext.ConvNeXt', swin: 'swin_transformer.SwinTransformer' } as const;

/**
 * The JSON beside a ConvNeXt or Swin export: `architecture` is timm's class (under timm.models), `timm_model`
 * its registered model for the standard sizes (convnext_tiny, swin_base_patch4_window7_224), `model_args`
 * the keyword arguments that build it; `mimir` as for the other exports.
 */
export const HierExportConfig = z
  .object({
    format: z.literal(EXPORT_FORMAT),
    version: z.literal(EXPORT_VERSION),
    architecture: z.enum([HIER_ARCHITECTURES.convnext, HIER_ARCHITECTURES.swin]),
    timm_model: z.string().nullable(),
    naming: z.literal('timm'),
    num_classes: z.number().int().min(0),
    global_pool: z.literal('avg'),
    model_args: z.record(z.string(), z.union([z.number(), z.boolean(), z.string(), z.array(z.number())])),
    pretrained_cfg: TimmPretrainedCfg,
    mimir: TimmExportRecord,
  })
  .refine((c) => c.model_args.num_classes === c.num_classes && c.mimir.headOutputs === c.num_classes, {
    message: 'num_classes, model_args.num_classes and mimir.headOutputs must agree',
  });
export type HierExportConfig = z.infer<typeof HierExportConfig>;

/** The config JSON's fields beside timm's (architecture, timm_model, model_args), which the PyTorch engine adds. */
export type HierExportFields = Omit<HierExportConfig, 'architecture' | 'timm_model' | 'model_args'>;

/** What the PyTorch engine's exporter gets: the checkpoint directory, the .safetensors target, the JSON's other fields. */
export interface HierExportJob {
  checkpoint: string;
  file: string;
  config: HierExportFields;
}

/** Runs export_run.py on `job` to its end (src/torch/export.ts); rejects with the engine's reason. */
export type HierExporter = (job: HierExportJob) => Promise<void>;

export function isHierarchicalEncoder(config: ModelConfig): config is ModelConfig & {
  encoder: { kind: 'convnext' | 'swin' };
} {
  return config.encoder.kind === 'convnext' || config.encoder.kind === 'swin';
}

/**
 * Export a ConvNeXt or Swin checkpoint through `exporter`: timm's names only (they are the checkpoint's
 * own), a pre-training checkpoint's encoder only (timm has no SparK or GreenMIM decoder). Returns the
 * written config JSON, validated, and the tensor names of the written file.
 */
export async function hierarchicalExport(input: {
  dir: string;
  manifest: CheckpointManifest;
  config: ModelConfig & { encoder: { kind: 'convnext' | 'swin' } };
  file: string;
  naming: ExportNaming;
  decoder: boolean;
  exporter: HierExporter | undefined;
}): Promise<{ config: HierExportConfig; tensors: string[] }> {
  const { dir, manifest, config, file } = input;
  const encoder = config.encoder.kind === 'convnext' ? 'ConvNeXt' : 'Swin';
  if (input.naming !== 'timm') {
    throw new Error(
      `A ${encoder} checkpoint holds timm's names and layouts already, so it exports with timm's names only: ` +
        'choose timm names (--naming timm, the default).',
    );
  }
  if (input.decoder) {
    throw new Error(
      `A ${encoder} pre-training checkpoint exports its encoder only: timm has no ` +
        `${config.encoder.kind === 'convnext' ? 'SparK' : 'GreenMIM'} decoder to load it into. Leave out --decoder.`,
    );
  }
  if (!input.exporter) {
    throw new Error(`A ${encoder} checkpoint is exported by the PyTorch engine, which this caller does not start.`);
  }
  const kind = manifest.kind;
  // Only the PyTorch engine trains these encoders, though a `--engine torch` run's record does not say so.
  const record = kind === 'finetune' ? classifierRecord(onTorchEngine(manifest.runConfig)) : null;
  if (kind === 'finetune' && !record) {
    throw new Error(
      `${dir} is a fine-tuning checkpoint without its run record (numClasses, method): it cannot be exported.`,
    );
  }
  const outputs = record ? headOutputs(record.method, record.numClasses) : 0;
  const fields: HierExportFields = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    naming: 'timm',
    num_classes: outputs,
    global_pool: 'avg',
    pretrained_cfg: pretrainedCfgOf(config, outputs),
    mimir: {
      kind,
      modelConfig: config,
      headOutputs: outputs,
      numClasses: record?.numClasses ?? 0,
      classNames: record?.classNames ?? [],
      method: record?.method ?? null,
      runConfig: manifest.runConfig,
      source: { checkpoint: dir, epoch: manifest.epoch, step: manifest.step },
    },
  };
  await input.exporter({ checkpoint: dir, file, config: fields });
  const configFile = configPathFor(file);
  const written = HierExportConfig.safeParse(JSON.parse(await readFile(configFile, 'utf8')));
  if (!written.success) {
    throw new Error(
      `The PyTorch engine wrote a config that does not fit the schema (${describeIssues(written.error)}): ${configFile}`,
    );
  }
  return { config: written.data, tensors: [...(await readSafetensorsHeader(file)).entries.keys()] };
}
