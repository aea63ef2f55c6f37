import type { ModelConfig } from '../../../src/shared/model-config';
import { microConfig } from './fixtures';
import * as tref from './reference-token-encoders';

// ConViT and CaiT cases shared by the cpu/wasm and webgpu tests: micro configs, float64 references, gradient probes.

// 4 heads: GPSA's local init covers a 2 x 2 kernel of heads.
export const convitConfig: ModelConfig = microConfig({
  heads: 4,
  encoder: { kind: 'convit', localUpToLayer: 1, localityStrength: 1, qkvBias: false },
});
export const caitConfig: ModelConfig = microConfig({
  heads: 4,
  encoder: { kind: 'cait', classAttentionBlocks: 2, layerScaleInit: 1e-5, qkvBias: true },
});
export const config = convitConfig; // the shapes both share
export const NUM_CLASSES = 5;

export interface Case {
  name: string;
  config: ModelConfig;
  ref: tref.TokenRef;
  /** Parameters whose gradient is zero analytically (a bias added before a softmax, the same for every key). */
  zeroGradient: RegExp;
  probes: [string, number[]][];
}

export const CASES: Case[] = [
  {
    name: 'ConViT',
    config: convitConfig,
    ref: (params, patches, ids) => tref.convitTokens(params, convitConfig, 1, patches, ids),
    zeroGradient: /pos_proj\.bias$/,
    probes: [
      ['cls_token', [3]],
      ['pos_embed', [5, 300]],
      ['patch_embed.proj.weight', [7, 900]],
      ['blocks.0.attn.qk.weight', [10, 1000]],
      ['blocks.0.attn.v.weight', [33]],
      ['blocks.0.attn.pos_proj.weight', [1, 6, 10]],
      ['blocks.0.attn.gating_param', [0, 3]],
      ['blocks.0.norm1.weight', [4]],
      ['blocks.1.attn.qkv.weight', [20, 2000]],
      ['blocks.1.mlp.fc1.bias', [9]],
      ['norm.weight', [2]],
    ],
  },
  {
    name: 'CaiT',
    config: caitConfig,
    ref: (params, patches, ids) => tref.caitTokens(params, caitConfig, 2, patches, ids),
    zeroGradient: /proj_l\.bias$/,
    probes: [
      ['cls_token', [3]],
      ['pos_embed', [5, 300]],
      ['patch_embed.proj.weight', [7]],
      ['blocks.0.attn.qkv.weight', [10, 1100, 2500]],
      ['blocks.0.attn.proj_l.weight', [1, 6]],
      ['blocks.1.attn.proj_w.weight', [2, 15]],
      ['blocks.1.attn.proj_w.bias', [3]],
      ['blocks.0.gamma_1', [4]],
      ['blocks.1.gamma_2', [8]],
      ['blocks_token_only.0.attn.q.weight', [12]],
      ['blocks_token_only.0.attn.k.weight', [40]],
      ['blocks_token_only.1.attn.v.bias', [5]],
      ['blocks_token_only.1.gamma_1', [6]],
      ['blocks_token_only.0.mlp.fc2.weight', [77]],
      ['norm.bias', [1]],
    ],
  },
];
