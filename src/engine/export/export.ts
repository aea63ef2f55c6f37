import { constants as bufferConstants } from 'node:buffer';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../io/atomic-file';
import { ModelConfig, type ModelConfigInput } from '@shared/model-config';
import { loadCheckpoint, readManifest, saveCheckpoint, type SavedCheckpoint } from '../checkpoint';
import { readRegularFile } from '../io/read-file';
import { decodeSafetensors, writeSafetensors, type TensorSource } from '../io/safetensors';
import { Rng } from '../rng';
import { resolveCheckpointPath } from '../finetune/checkpoint-path';
import { classifierRecord, placeholderRecord } from './checkpoint-source';
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  ExportConfig,
  pretrainedCfgOf,
  type ExportConfigInput,
  type ExportNaming,
  type TimmModelArgs,
} from './config';
import { checkExportTargets, configPathFor } from './targets';
import { HierExportConfig, hierarchicalExport, isHierarchicalEncoder, type HierExporter } from './hier-encoders';
import { isTokenEncoder, tokenEncoderExport, TokenExportConfig } from './token-encoders';
import { fromTorchLayout, isEncoderName, nativeRoles, toTorchLayout, type ExportKind, type Weights } from './layout';
import { errorMessage } from '@shared/unknown-value';

export { configPathFor } from './targets';

/** A config JSON is a few kilobytes; anything near this is not one. */
const MAX_CONFIG_BYTES = 16 << 20;

export interface ExportOptions {
  /** 'timm' (default): timm's / MAE's names and PyTorch layouts. 'native': the engine's own. */
  naming?: ExportNaming;
  /** Pre-training checkpoints: also write MAE's decoder (default: the encoder only). */
  decoder?: boolean;
  /** Replace the weights file and its config JSON where they exist (default: refuse). */
  overwrite?: boolean;
  /** ConvNeXt and Swin: the PyTorch engine's exporter (src/torch/export.ts); without it they are refused. */
  hierarchical?: HierExporter;
}

export interface ExportResult {
  file: string;
  configFile: string;
  kind: ExportKind;
  naming: ExportNaming;
  tensors: string[];
  config: ExportConfig | TokenExportConfig | HierExportConfig;
}

/**
 * The PyTorch class the export loads into: timm's VisionTransformer for a plain ViT; for a ConvStem
 * ViT, which timm lacks, the documented module docs/export/mimir_convstem_vit.py (the workbench's
 * names, the authors' for the stem).
 */
function architectureOf(config: ModelConfig): string {
  switch (config.encoder.kind) {
    case 'vit':
      return 'vision_transformer.VisionTransformer';
    case 'convstem':
      return 'mimir_convstem_vit.ConvStemViT';
    default:
      throw new Error(`internal: the ${config.encoder.kind} encoder has its own exporter`);
  }
}

function timmArgs(kind: ExportKind, config: ModelConfig, headOutputs: number): TimmModelArgs {
  return {
    ...(config.encoder.kind === 'convstem' ? { stem_channels: config.encoder.stemChannels } : {}),
    img_size: config.imageSize,
    patch_size: config.patchSize,
    in_chans: config.channels,
    embed_dim: config.width,
    depth: config.depth,
    num_heads: config.heads,
    mlp_ratio: config.mlpRatio,
    num_classes: kind === 'finetune' ? headOutputs : 0,
    global_pool: kind === 'finetune' ? 'avg' : 'token',
    class_token: true,
    fc_norm: kind === 'finetune',
    qkv_bias: true,
  };
}

/** Write the checkpoint's model as safetensors plus the config JSON beside it. */
export async function exportCheckpoint(
  checkpoint: string,
  file: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const naming = options.naming ?? 'timm';
  await checkExportTargets(file, options.overwrite === true);
  const dir = await resolveCheckpointPath(checkpoint);
  const head = await readManifest(dir);
  const headConfig = ModelConfig.parse(head.modelConfig);
  if (isHierarchicalEncoder(headConfig)) {
    const made = await hierarchicalExport({
      dir,
      manifest: head,
      config: headConfig,
      file,
      naming,
      decoder: options.decoder === true,
      exporter: options.hierarchical,
    });
    return { file, configFile: configPathFor(file), kind: head.kind, naming, ...made };
  }
  const loaded = await loadCheckpoint(dir);
  const { manifest } = loaded;
  const kind: ExportKind = manifest.kind;
  const config = ModelConfig.parse(manifest.modelConfig);
  const headOutputs = kind === 'finetune' ? (loaded.weights.get('head.bias')?.shape[0] ?? 0) : 0;
  const record = kind === 'finetune' ? classifierRecord(manifest.runConfig) : null;
  const method = record?.method ?? null;
  const numClasses = kind === 'finetune' ? (record?.numClasses ?? headOutputs) : 0;
  const decoder = kind === 'pretrain' && options.decoder === true;

  if (isTokenEncoder(config)) {
    if (naming !== 'timm' || decoder) {
      throw new Error(
        `a ${config.encoder.kind} checkpoint exports with timm's names only, without a decoder (timm has no MAE of it)`,
      );
    }
    const made = tokenEncoderExport(kind, loaded.weights, config, headOutputs, {
      numClasses,
      classNames: record?.classNames ?? [],
      method,
      runConfig: manifest.runConfig,
      source: { checkpoint: dir, epoch: manifest.epoch, step: manifest.step },
    });
    return writeExport(file, made.weights, made.config, kind, naming);
  }

  let weights: Weights;
  if (naming === 'timm') weights = toTorchLayout(loaded.weights, kind, config, headOutputs, { decoder });
  else {
    weights = new Map();
    for (const name of nativeRoles(kind, config, headOutputs).keys()) {
      if (kind === 'pretrain' && !decoder && !isEncoderName(name)) continue;
      const w = loaded.weights.get(name);
      if (!w) throw new Error(`checkpoint ${dir} has no "${name}"`);
      weights.set(name, w);
    }
  }

  const exportConfig: ExportConfigInput = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    architecture: architectureOf(config),
    naming,
    num_classes: kind === 'finetune' ? headOutputs : 0,
    global_pool: kind === 'finetune' ? 'avg' : 'token',
    model_args: timmArgs(kind, config, headOutputs),
    pretrained_cfg: pretrainedCfgOf(config, kind === 'finetune' ? headOutputs : 0),
    decoder: decoder
      ? {
          decoder_embed_dim: config.decoderWidth,
          decoder_depth: config.decoderDepth,
          decoder_num_heads: config.decoderHeads,
        }
      : null,
    mimir: {
      kind,
      modelConfig: config,
      headOutputs,
      numClasses,
      classNames: record?.classNames ?? [],
      method,
      runConfig: manifest.runConfig,
      source: { checkpoint: dir, epoch: manifest.epoch, step: manifest.step },
    },
  };
  return writeExport(file, weights, ExportConfig.parse(exportConfig), kind, naming);
}

async function writeExport(
  file: string,
  weights: Weights,
  config: ExportConfig | TokenExportConfig,
  kind: ExportKind,
  naming: ExportNaming,
): Promise<ExportResult> {
  const sources = new Map<string, TensorSource>(
    [...weights].map(([name, w]) => [name, { dtype: 'F32', shape: w.shape, values: w.data }]),
  );
  // "format: pt" is what safetensors' torch loaders expect in the metadata.
  await writeSafetensors(file, sources, { format: 'pt', producer: EXPORT_FORMAT, naming, kind });
  const configFile = configPathFor(file);
  await writeFileAtomic(configFile, `${JSON.stringify(config, null, 2)}\n`);
  return { file, configFile, kind, naming, tensors: [...weights.keys()], config };
}

export interface ImportedModel {
  kind: ExportKind;
  naming: ExportNaming;
  modelConfig: ModelConfig;
  /** Native names and layouts, in the engine's parameter order. */
  weights: Weights;
  headOutputs: number;
  numClasses: number;
  classNames: string[];
  method: string | null;
  runConfig: unknown;
  config: ExportConfig;
}

/** The model config a file's JSON describes: the workbench's own record, else timm's model args. */
function modelConfigOf(config: ExportConfig): ModelConfig {
  if (config.mimir) return config.mimir.modelConfig;
  const a = config.model_args;
  const mean = config.pretrained_cfg?.mean;
  const std = config.pretrained_cfg?.std;
  const identity = (mean ?? []).every((m) => m === 0) && (std ?? []).every((s) => s === 1);
  const input: ModelConfigInput = {
    imageSize: a.img_size,
    patchSize: a.patch_size,
    channels: a.in_chans,
    width: a.embed_dim,
    depth: a.depth,
    heads: a.num_heads,
    mlpRatio: a.mlp_ratio,
    // The paper's decoder where the file names none (a classifier never uses it).
    decoderWidth: config.decoder?.decoder_embed_dim ?? 128,
    decoderDepth: config.decoder?.decoder_depth ?? 2,
    decoderHeads: config.decoder?.decoder_num_heads ?? 16,
    ...(mean && std && !identity ? { normalize: { mean, std } } : {}),
    ...(a.stem_channels ? { encoder: { kind: 'convstem', stemChannels: a.stem_channels } } : {}),
  };
  return ModelConfig.parse(input);
}

/** Read an exported (or timm-written) safetensors file with its config JSON, back into native weights. */
export async function importCheckpoint(file: string, options: { config?: string } = {}): Promise<ImportedModel> {
  const configFile = options.config ?? configPathFor(file);
  let json: unknown;
  try {
    json = JSON.parse((await readRegularFile(configFile, MAX_CONFIG_BYTES)).toString('utf8'));
  } catch (error) {
    throw new Error(`${configFile}: cannot read the model config (${errorMessage(error)})`, { cause: error });
  }
  if (TokenExportConfig.safeParse(json).success || HierExportConfig.safeParse(json).success) {
    throw new Error(
      `${configFile}: a ConViT, CaiT, ConvNeXt or Swin export (timm's names) loads into timm, not back into the workbench yet: use its checkpoint`,
    );
  }
  const parsed = ExportConfig.safeParse(json);
  if (!parsed.success) {
    throw new Error(
      `${configFile}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ')}`,
    );
  }
  const config = parsed.data;
  const args = config.model_args;
  const kind: ExportKind = config.mimir?.kind ?? (args.num_classes > 0 ? 'finetune' : 'pretrain');
  if (!args.class_token || !args.qkv_bias)
    throw new Error(`${configFile}: the model needs class_token and qkv_bias on`);
  if (kind === 'finetune' && (args.global_pool !== 'avg' || !args.fc_norm)) {
    throw new Error(
      `${configFile}: a classifier must pool the patch tokens with fc_norm (global_pool 'avg', fc_norm true), as MAE fine-tuning; got global_pool '${args.global_pool}', fc_norm ${args.fc_norm}`,
    );
  }
  if (kind === 'pretrain' && !config.decoder) {
    throw new Error(
      `${file} holds only an encoder; a pre-training checkpoint needs MAE's decoder too (export it with the decoder)`,
    );
  }
  const modelConfig = modelConfigOf(config);
  const headOutputs = kind === 'finetune' ? args.num_classes : 0;
  const read = decodeSafetensors(await readRegularFile(file, bufferConstants.MAX_LENGTH), file);
  const weights: Weights = new Map();
  for (const [name, record] of read.tensors) {
    if (record.dtype === 'I64' || record.dtype === 'I32' || record.dtype === 'U8') {
      throw new Error(`${file}: "${name}" is ${record.dtype}, not a floating-point tensor`);
    }
    weights.set(name, {
      shape: record.shape,
      data: record.data instanceof Float32Array ? record.data : Float32Array.from(record.data),
    });
  }
  let native: Weights;
  if (config.naming === 'timm') native = fromTorchLayout(weights, kind, modelConfig, headOutputs);
  else {
    native = new Map();
    const problems: string[] = [];
    const specs = nativeRoles(kind, modelConfig, headOutputs);
    for (const name of specs.keys()) {
      const w = weights.get(name);
      if (w) native.set(name, w);
      else problems.push(`lacks "${name}"`);
    }
    const extra = [...weights.keys()].filter((n) => !specs.has(n));
    if (extra.length > 0) problems.push(`has unknown parameters ${extra.slice(0, 6).join(', ')}`);
    if (problems.length > 0) throw new Error(`${file} ${problems.join('; ')}`);
  }
  const method = config.mimir?.method ?? null;
  return {
    kind,
    naming: config.naming,
    modelConfig,
    weights: native,
    headOutputs,
    numClasses: config.mimir?.numClasses ?? (method === 'dbat' ? headOutputs / 2 : headOutputs),
    classNames: config.mimir?.classNames ?? [],
    method,
    runConfig: config.mimir?.runConfig ?? null,
    config,
  };
}

/** Import a file and save it as a checkpoint under `outDir` (named `imported`, `latest` pointing at it). */
export async function importToCheckpoint(
  file: string,
  outDir: string,
  options: { config?: string } = {},
): Promise<{ saved: SavedCheckpoint; model: ImportedModel }> {
  const model = await importCheckpoint(file, options);
  const params = new Map<string, tf.Tensor>(
    [...model.weights].map(([name, w]) => [name, tf.tensor(w.data, w.shape, 'float32')]),
  );
  try {
    const source = model.config.mimir?.source;
    const runConfig =
      model.runConfig ??
      (model.kind === 'finetune'
        ? placeholderRecord(model.modelConfig, model.numClasses, model.classNames, model.method, path.resolve(file))
        : { importedFrom: path.resolve(file) });
    const saved = await saveCheckpoint(
      outDir,
      {
        kind: model.kind,
        epoch: source?.epoch ?? 0,
        step: source?.step ?? 0,
        runConfig: JSON.parse(JSON.stringify(runConfig)),
        modelConfig: JSON.parse(JSON.stringify(model.modelConfig)),
        params,
        optimizer: null,
        rng: { state: new Rng(0).state(), dataIterator: null },
      },
      { name: 'imported' },
    );
    return { saved, model };
  } finally {
    tf.dispose([...params.values()]);
  }
}
