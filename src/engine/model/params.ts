import * as tf from '@tensorflow/tfjs-core';
import { patchDim, type ModelConfig } from '@shared/model-config';
import type { Rng } from '../rng';
import { encoderFor } from './encoders';
import { blockSpecs, linearSpecs, normSpecs, type ParamSpec } from './param-specs';

export type { Init, ParamRole, ParamSpec } from './param-specs';

/**
 * Parameters: one ordered Map from timm / MAE names to tf.Variables.
 *
 * Names (MAE's models_mae.MaskedAutoencoderViT and timm's VisionTransformer with global_pool='avg'):
 *   cls_token [1, 1, D]
 *   patch_embed.proj.weight [p*p*C, D], patch_embed.proj.bias [D]
 *   blocks.{i}.norm1.{weight,bias} [D]
 *   blocks.{i}.attn.qkv.weight [D, 3D], blocks.{i}.attn.qkv.bias [3D]   (columns: q | k | v, then head, then dim)
 *   blocks.{i}.attn.proj.weight [D, D], .bias [D]
 *   blocks.{i}.norm2.{weight,bias} [D]
 *   blocks.{i}.mlp.fc1.weight [D, H], .bias [H]; blocks.{i}.mlp.fc2.weight [H, D], .bias [D]   (H = D * mlpRatio)
 *   MAE only:        norm.{weight,bias}, mask_token [1, 1, Dd], decoder_embed.weight [D, Dd], .bias,
 *                    decoder_blocks.{i}.* (as blocks, width Dd), decoder_norm.*, decoder_pred.weight [Dd, p*p*C], .bias
 *   classifier only: fc_norm.{weight,bias} [D], head.weight [D, classes], head.bias [classes]
 * The position embeddings (pos_embed, decoder_pos_embed) are fixed sin-cos tables, not parameters
 * (see pos-embed.ts); an exporter writes them from there.
 *
 * Layout, and the mapping to PyTorch / timm tensors:
 * - Linear weights are stored [in, out] (what tf.matMul(x, w) wants): torch's weight [out, in] is the transpose.
 * - patch_embed.proj.weight is the conv kernel as a linear map over a patch flattened in (row i,
 *   column j, channel c) order, c fastest: stored[(i*p + j)*C + c, o] = torch_conv_weight[o, c, i, j].
 * - Biases, LayerNorm weights and the tokens have the same shape and order as in PyTorch.
 */
export type ParamMap = Map<string, tf.Variable>;

export interface ClassifierInitOptions {
  /** Standard deviation of the head's weights: 2e-5 (MAE fine-tuning, the default) or 2e-2 (the authors' CIFAR code). */
  headInitStd?: number;
}

/** Names, shapes and initialisers of the masked autoencoder's parameters, in Map order. */
export function maeParamSpecs(config: ModelConfig): ParamSpec[] {
  const dd = config.decoderWidth;
  const specs = [
    ...encoderFor(config).backboneSpecs(config),
    ...normSpecs('norm', config.width),
    { name: 'mask_token', shape: [1, 1, dd], role: 'token', init: { kind: 'normal', std: 0.02 } } satisfies ParamSpec,
    ...linearSpecs('decoder_embed', config.width, dd),
  ];
  for (let i = 0; i < config.decoderDepth; i++) specs.push(...blockSpecs(`decoder_blocks.${i}`, dd, config.mlpRatio));
  specs.push(...normSpecs('decoder_norm', dd), ...linearSpecs('decoder_pred', dd, patchDim(config)));
  return specs;
}

/** Names, shapes and initialisers of the fine-tuning classifier's parameters, in Map order. */
export function classifierParamSpecs(
  config: ModelConfig,
  numClasses: number,
  options: ClassifierInitOptions = {},
): ParamSpec[] {
  if (!Number.isInteger(numClasses) || numClasses < 1)
    throw new Error(`numClasses must be a positive integer, got ${numClasses}`);
  const encoder = encoderFor(config);
  return [...encoder.backboneSpecs(config), ...encoder.headSpecs(config, numClasses, options.headInitStd ?? 2e-5)];
}

/** The names a classifier starts fresh at fine-tuning (its head), not copied from the pre-trained encoder. */
function headNames(config: ModelConfig, numClasses: number): Set<string> {
  return new Set(
    encoderFor(config)
      .headSpecs(config, numClasses, 0)
      .map((s) => s.name),
  );
}

function initialValues(spec: ParamSpec, rng: Rng): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  const init = spec.init;
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      values.fill(1);
      break;
    case 'xavier': {
      const bound = Math.sqrt(6 / (init.fanIn + init.fanOut));
      for (let i = 0; i < size; i++) values[i] = (2 * rng.uniform() - 1) * bound;
      break;
    }
    case 'normal':
      for (let i = 0; i < size; i++) values[i] = rng.normal() * init.std;
      break;
    case 'uniform':
      for (let i = 0; i < size; i++) values[i] = (2 * rng.uniform() - 1) * init.bound;
      break;
  }
  return values;
}

/** Create variables for `specs`, drawing every random value from `rng` in spec order (so init repeats). */
export function initParams(specs: ParamSpec[], rng: Rng): ParamMap {
  const params: ParamMap = new Map();
  for (const spec of specs) {
    const value = tf.tensor(initialValues(spec, rng), spec.shape, 'float32');
    params.set(spec.name, tf.variable(value, true));
    value.dispose();
  }
  return params;
}

/** Every spec drawn in order, then the encoder's initial values that are not plain draws. */
function initModelParams(config: ModelConfig, specs: ParamSpec[], rng: Rng): ParamMap {
  const params = initParams(specs, rng);
  encoderFor(config).adjustInit?.(config, params);
  return params;
}

export function initMaeParams(config: ModelConfig, rng: Rng): ParamMap {
  return initModelParams(config, maeParamSpecs(config), rng);
}

export function initClassifierParams(
  config: ModelConfig,
  numClasses: number,
  rng: Rng,
  options: ClassifierInitOptions = {},
): ParamMap {
  return initModelParams(config, classifierParamSpecs(config, numClasses, options), rng);
}

/**
 * A classifier whose backbone (the encoder's backboneSpecs: cls_token, patch_embed, blocks for a ViT) is
 * copied from a pre-trained MAE (or classifier) parameter map; the head (headSpecs: fc_norm and head
 * for a ViT) is fresh, drawn from `rng`. The MAE's final `norm` is
 * not used (timm drops it when fc_norm is on). The copies are independent variables.
 */
export function classifierParamsFromEncoder(
  source: ParamMap,
  config: ModelConfig,
  numClasses: number,
  rng: Rng,
  options: ClassifierInitOptions = {},
): ParamMap {
  const params: ParamMap = new Map();
  const head = headNames(config, numClasses);
  for (const spec of classifierParamSpecs(config, numClasses, options)) {
    const fresh = head.has(spec.name);
    const from = fresh ? undefined : source.get(spec.name);
    if (!fresh && !from) throw new Error(`the pre-trained parameters have no "${spec.name}"`);
    if (from && !tf.util.arraysEqual(from.shape, spec.shape)) {
      throw new Error(
        `"${spec.name}" has shape [${from.shape}] in the pre-trained parameters, expected [${spec.shape}]`,
      );
    }
    const value = from ? tf.clone(from) : tf.tensor(initialValues(spec, rng), spec.shape, 'float32');
    params.set(spec.name, tf.variable(value, true));
    value.dispose();
  }
  return params;
}

/** Check that `params` holds exactly the names and shapes of `specs` (e.g. after loading a checkpoint). */
export function checkParams(params: ParamMap, specs: ParamSpec[]): void {
  for (const spec of specs) {
    const v = params.get(spec.name);
    if (!v) throw new Error(`missing parameter "${spec.name}"`);
    if (!tf.util.arraysEqual(v.shape, spec.shape)) {
      throw new Error(`parameter "${spec.name}" has shape [${v.shape}], expected [${spec.shape}]`);
    }
  }
  const expected = new Set(specs.map((s) => s.name));
  for (const name of params.keys()) if (!expected.has(name)) throw new Error(`unexpected parameter "${name}"`);
}

export function getParam(params: ParamMap, name: string): tf.Variable {
  const v = params.get(name);
  if (!v) throw new Error(`missing parameter "${name}"`);
  return v;
}

export function disposeParams(params: ParamMap): void {
  for (const v of params.values()) v.dispose();
  params.clear();
}

export function countParams(params: ParamMap): number {
  let n = 0;
  for (const v of params.values()) n += v.size;
  return n;
}
