import { z } from 'zod';
import { ModelConfig } from '@shared/model-config';

/**
 * The JSON written beside an exported safetensors file. `model_args` are the keyword arguments of
 * timm's VisionTransformer that rebuild the model (`VisionTransformer(**model_args)` then
 * `load_state_dict`), `pretrained_cfg` carries the input normalisation timm's data config reads
 * (mean 0 / std 1: the model takes [0, 1] pixels), `mimir` what the workbench needs to import it back.
 */
export const EXPORT_FORMAT = 'mimir-export';
export const EXPORT_VERSION = 1;
export const EXPORT_NAMINGS = ['timm', 'native'] as const;
export type ExportNaming = (typeof EXPORT_NAMINGS)[number];

export const TimmModelArgs = z.object({
  img_size: z.number().int().positive(),
  patch_size: z.number().int().positive(),
  in_chans: z.number().int().positive(),
  embed_dim: z.number().int().positive(),
  depth: z.number().int().positive(),
  num_heads: z.number().int().positive(),
  mlp_ratio: z.number().positive(),
  num_classes: z.number().int().min(0),
  global_pool: z.enum(['avg', 'token', '']),
  class_token: z.boolean(),
  fc_norm: z.boolean(),
  qkv_bias: z.boolean(),
  /** A ConvStem ViT (docs/export/mimir_convstem_vit.py): the stem's 3x3 convolution widths. */
  stem_channels: z.array(z.number().int().positive()).optional(),
});
export type TimmModelArgs = z.infer<typeof TimmModelArgs>;

export const ExportConfig = z.object({
  format: z.literal(EXPORT_FORMAT).optional(),
  version: z.literal(EXPORT_VERSION).optional(),
  architecture: z.string(),
  naming: z.enum(EXPORT_NAMINGS).default('timm'),
  num_classes: z.number().int().min(0),
  global_pool: z.string(),
  model_args: TimmModelArgs,
  pretrained_cfg: z
    .object({
      input_size: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
      mean: z.array(z.number()),
      std: z.array(z.number()),
      num_classes: z.number().int().min(0),
    })
    .partial()
    .optional(),
  /** MAE's decoder (present when the file holds it). */
  decoder: z
    .object({
      decoder_embed_dim: z.number().int(),
      decoder_depth: z.number().int(),
      decoder_num_heads: z.number().int(),
    })
    .nullable()
    .optional(),
  mimir: z
    .object({
      kind: z.enum(['finetune', 'pretrain']),
      modelConfig: ModelConfig,
      /** Outputs of the head (2 x classes for DBAT). */
      headOutputs: z.number().int().min(0),
      numClasses: z.number().int().min(0),
      classNames: z.array(z.string()).default([]),
      method: z.string().nullable().default(null),
      /** The run configuration of the source checkpoint, kept for an exact re-import. */
      runConfig: z.json().optional(),
      source: z.object({ checkpoint: z.string(), epoch: z.number().int(), step: z.number().int() }).optional(),
    })
    .optional(),
});
export type ExportConfig = z.infer<typeof ExportConfig>;
export type ExportConfigInput = z.input<typeof ExportConfig>;

/** Input normalisation timm's data config reads, as every export's JSON carries it (mean 0 / std 1: [0, 1] pixels). */
export const TimmPretrainedCfg = z.object({
  input_size: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  mean: z.array(z.number()),
  std: z.array(z.number()),
  num_classes: z.number().int().min(0),
});

/** What the workbench records beside a timm-named export of an encoder timm has (ConViT, CaiT, ConvNeXt, Swin). */
export const TimmExportRecord = z.object({
  kind: z.enum(['finetune', 'pretrain']),
  modelConfig: ModelConfig,
  headOutputs: z.number().int().min(0),
  numClasses: z.number().int().min(0),
  classNames: z.array(z.string()),
  method: z.string().nullable(),
  runConfig: z.json().optional(),
  source: z.object({ checkpoint: z.string(), epoch: z.number().int(), step: z.number().int() }).optional(),
});
export type TimmExportRecord = z.infer<typeof TimmExportRecord>;

/** The model's input as timm's pretrained_cfg describes it (identity normalisation where the model has none). */
export function pretrainedCfgOf(config: ModelConfig, numClasses: number): z.infer<typeof TimmPretrainedCfg> {
  return {
    input_size: [config.channels, config.imageSize, config.imageSize],
    mean: config.normalize?.mean ?? new Array<number>(config.channels).fill(0),
    std: config.normalize?.std ?? new Array<number>(config.channels).fill(1),
    num_classes: numClasses,
  };
}
