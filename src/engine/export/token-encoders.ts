import type { ModelConfig } from '@shared/model-config';
import { caitOf } from '../model/cait';
import { convitOf } from '../model/convit';
import type { ParamSpec } from '../model/params';
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

/**
 * The timm model that rebuilds a ConViT: `architecture` names timm's registered model (convit_small)
 * when the arguments are exactly its, else the class (ConVit) to build with `model_args`.
 * timm's ConVit takes embed_dim per head (it multiplies by num_heads).
 */
export function timmConvitModel(config: ModelConfig, numClasses: number): TimmTokenModel {
  const enc = convitOf(config);
  const args = {
    img_size: config.imageSize,
    patch_size: config.patchSize,
    in_chans: config.channels,
    num_classes: numClasses,
    global_pool: 'token',
    embed_dim: config.width / config.heads,
    depth: config.depth,
    num_heads: config.heads,
    mlp_ratio: config.mlpRatio,
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
  const enc = caitOf(config);
  const args = {
    img_size: config.imageSize,
    patch_size: config.patchSize,
    in_chans: config.channels,
    num_classes: numClasses,
    global_pool: 'token',
    embed_dim: config.width,
    depth: config.depth,
    num_heads: config.heads,
    mlp_ratio: config.mlpRatio,
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
