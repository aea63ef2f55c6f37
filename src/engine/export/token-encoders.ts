import { z } from 'zod';
import type { ModelConfig } from '@shared/model-config';
import { convitOf } from '../model/convit';
import { encoderOfKind } from '../model/encoder-parts';
import { classifierParamSpecs, maeParamSpecs, type ParamSpec } from '../model/params';
import { EXPORT_FORMAT, EXPORT_VERSION, TimmExportRecord, TimmPretrainedCfg, pretrainedCfgOf } from './config';
import { patchWeightToConv, transpose2d, type Weights } from './layout';

/**
 * ConViT and CaiT in timm's layouts: the names are already timm's (timm.models.convit.ConVit,
 * timm.models.cait.Cait); linear weights [in, out] become [out, in], the patch embedding becomes the
 * conv kernel [D, C, p, p]; pos_embed, the tokens, gating_param and the LayerScale gammas are as they are.
 * The state dict loads into timm's model with strict=True.
 */
export function toTimmTokenEncoder(weights: Weights, specs: ParamSpec[], config: ModelConfig): Weights {
  const out: Weights = new Map();
  for (const spec of specs) {
    const w = weights.get(spec.name);
    if (!w) throw new Error(`the weights have no "${spec.name}"`);
    if (spec.role === 'weight') out.set(spec.name, transpose2d(w));
    else if (spec.role === 'patch-weight') out.set(spec.name, patchWeightToConv(w, config.patchSize, config.channels));
    else out.set(spec.name, w);
  }
  const unknown = [...weights.keys()].filter((name) => !specs.some((s) => s.name === name));
  if (unknown.length > 0) throw new Error(`the weights hold names the model does not have: ${unknown.join(', ')}`);
  return out;
}

export type TimmTokenModel =
  | { family: 'convit'; architecture: string; model_args: Record<string, number | boolean | string> }
  | { family: 'cait'; architecture: string; model_args: Record<string, number | boolean | string> };

const sameArgs = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  Object.entries(b).every(([k, v]) => a[k] === v);

/** The constructor arguments timm's token-pooled ViT classes share, in timm's order. */
function timmTokenArgs(config: ModelConfig, numClasses: number, embedDim: number) {
  return {
    img_size: config.imageSize,
    patch_size: config.patchSize,
    in_chans: config.channels,
    num_classes: numClasses,
    global_pool: 'token',
    embed_dim: embedDim,
    depth: config.depth,
    num_heads: config.heads,
    mlp_ratio: config.mlpRatio,
  };
}

/**
 * The timm model that rebuilds a ConViT: `architecture` names timm's registered model (convit_small)
 * when the arguments are exactly its, else the class (ConVit) to build with `model_args`.
 * timm's ConVit takes embed_dim per head (it multiplies by num_heads).
 */
export function timmConvitModel(config: ModelConfig, numClasses: number): TimmTokenModel {
  const enc = convitOf(config);
  const args = {
    ...timmTokenArgs(config, numClasses, config.width / config.heads),
    qkv_bias: enc.qkvBias,
    local_up_to_layer: enc.localUpToLayer,
    locality_strength: enc.localityStrength,
  };
  const small = {
    img_size: 224,
    patch_size: 16,
    in_chans: 3,
    embed_dim: 48,
    depth: 12,
    num_heads: 9,
    mlp_ratio: 4,
    qkv_bias: false,
    local_up_to_layer: 10,
  };
  return { family: 'convit', architecture: sameArgs(args, small) ? 'convit_small' : 'ConVit', model_args: args };
}

/** The timm model that rebuilds a CaiT: cait_s24_224 when the arguments are exactly its, else the class Cait. */
export function timmCaitModel(config: ModelConfig, numClasses: number): TimmTokenModel {
  const enc = encoderOfKind(config, 'cait');
  const args = {
    ...timmTokenArgs(config, numClasses, config.width),
    qkv_bias: enc.qkvBias,
    init_values: enc.layerScaleInit,
    depth_token_only: enc.classAttentionBlocks,
    mlp_ratio_token_only: config.mlpRatio,
  };
  const s24 = {
    img_size: 224,
    patch_size: 16,
    in_chans: 3,
    embed_dim: 384,
    depth: 24,
    num_heads: 8,
    mlp_ratio: 4,
    qkv_bias: true,
    depth_token_only: 2,
    mlp_ratio_token_only: 4,
  };
  return { family: 'cait', architecture: sameArgs(args, s24) ? 'cait_s24_224' : 'Cait', model_args: args };
}

/**
 * The JSON beside a ConViT or CaiT export: `architecture` is timm's class (convit.ConVit, cait.Cait),
 * `timm_model` its registered model when the arguments are exactly its (convit_small, cait_s24_224),
 * `model_args` the keyword arguments that rebuild it; `mimir` as for the ViT's export.
 */
export const TokenExportConfig = z.object({
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(EXPORT_VERSION),
  architecture: z.enum(['convit.ConVit', 'cait.Cait']),
  timm_model: z.string().nullable(),
  naming: z.literal('timm'),
  num_classes: z.number().int().min(0),
  global_pool: z.literal('token'),
  model_args: z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])),
  pretrained_cfg: TimmPretrainedCfg,
  mimir: TimmExportRecord,
});
export type TokenExportConfig = z.infer<typeof TokenExportConfig>;

export function isTokenEncoder(config: ModelConfig): boolean {
  return config.encoder.kind === 'convit' || config.encoder.kind === 'cait';
}

/**
 * A ConViT or CaiT checkpoint in timm's names and layouts and its config JSON. A classifier is
 * timm's whole model; a pre-training checkpoint its encoder (num_classes 0: backbone and norm; timm
 * has no MAE of these, so no decoder).
 */
export function tokenEncoderExport(
  kind: 'finetune' | 'pretrain',
  weights: Weights,
  config: ModelConfig,
  headOutputs: number,
  mimir: Omit<TokenExportConfig['mimir'], 'kind' | 'modelConfig' | 'headOutputs'>,
): { weights: Weights; config: TokenExportConfig } {
  const specs =
    kind === 'finetune'
      ? classifierParamSpecs(config, headOutputs)
      : maeParamSpecs(config).filter((s) => s.name !== 'mask_token' && !s.name.startsWith('decoder_'));
  const encoderOnly = new Map([...weights].filter(([name]) => specs.some((s) => s.name === name)));
  const classes = kind === 'finetune' ? headOutputs : 0;
  const timm = config.encoder.kind === 'convit' ? timmConvitModel(config, classes) : timmCaitModel(config, classes);
  const exportConfig = TokenExportConfig.parse({
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    architecture: timm.family === 'convit' ? 'convit.ConVit' : 'cait.Cait',
    timm_model: /^[a-z]/.test(timm.architecture) ? timm.architecture : null,
    naming: 'timm',
    num_classes: classes,
    global_pool: 'token',
    model_args: timm.model_args,
    pretrained_cfg: pretrainedCfgOf(config, classes),
    mimir: { kind, modelConfig: config, headOutputs, ...mimir },
  });
  return { weights: toTimmTokenEncoder(encoderOnly, specs, config), config: exportConfig };
}
