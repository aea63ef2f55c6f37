import { encoderKindOf } from '@shared/evaluation-engine';
import type { Stats } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { CheckpointEntry, ExportNaming, ExportOutcome, ImportOutcome } from '@shared/api';
import { CHECKPOINT_MANIFEST_FILE, CheckpointKind } from '@shared/checkpoint';
import type { Run } from '@shared/store-types';
import type { RunStore } from '@store/run-store';
import { readRegularFile } from '@engine/io/read-file';
import { checkExportTargets, existingExportFiles } from '@engine/export/targets';
import { errorMessage } from '@shared/unknown-value';

/**
 * Checkpoints for the pickers (those of done pre-training and fine-tuning runs, and imported ones),
 * and export / import of their weights. Exporting is layout conversion and file writing; importing
 * builds a checkpoint through TensorFlow.js's cpu backend (a copy of the weights, no training math).
 */

/** The part of a checkpoint.json the catalogue reads. */
const ManifestHead = z.object({
  kind: CheckpointKind,
  epoch: z.number().int(),
  step: z.number().int(),
  createdAt: z.string().optional(),
  runConfig: z.unknown().optional(),
  modelConfig: z.unknown().optional(),
});

export interface CheckpointCatalog {
  list(filter: { kind?: CheckpointKind; runId?: string }): Promise<CheckpointEntry[]>;
  suggest(checkpoint: string, naming: ExportNaming): Promise<{ file: string; exists: boolean }>;
  write(input: {
    checkpoint: string;
    naming: ExportNaming;
    decoder: boolean;
    file: string;
    overwrite: boolean;
  }): Promise<ExportOutcome>;
  importFile(input: { file: string; config?: string }): Promise<ImportOutcome>;
}

/** An error the user can act on (its message says what to change). */
export class CatalogError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid-input' | 'not-found',
  ) {
    super(message);
  }
}

/** The engine's export errors name the file and what is wrong with it: the user's to fix. */
async function asUserError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CatalogError) throw error;
    throw new CatalogError(errorMessage(error), 'invalid-input');
  }
}

export function expandHome(file: string): string {
  return file === '~' || file.startsWith('~/') ? path.join(os.homedir(), file.slice(1)) : file;
}

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 48) || 'model'
  );
}

/** A manifest is a few kilobytes; anything near this is not one. */
const MAX_MANIFEST_BYTES = 16 << 20;

async function readManifestHead(dir: string): Promise<z.infer<typeof ManifestHead> | null> {
  try {
    const text = (await readRegularFile(path.join(dir, CHECKPOINT_MANIFEST_FILE), MAX_MANIFEST_BYTES)).toString('utf8');
    const parsed = ManifestHead.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The file's or folder's stat, or null where there is none (asynchronous: this runs in Electron's main process). */
async function statOrNull(file: string): Promise<Stats | null> {
  return stat(file).catch(() => null);
}

function runDetail(run: Run): string {
  const key = run.kind === 'pretrain' ? 'mode' : 'method';
  const value = run.config[key];
  return typeof value === 'string' ? value : '';
}

/** The PyTorch snippet the export dialog shows. */
export function pytorchSnippet(outcome: Omit<ExportOutcome, 'pytorch'>): string {
  const timm = outcome.naming === 'timm';
  const [module = '', name = ''] = outcome.architecture.split('.');
  // The ConvStem ViT's own module (docs/export/mimir_convstem_vit.py) sits beside the file, not in timm.
  const from = module.startsWith('mimir_') ? module : `timm.models.${module}`;
  const lines = [
    'import json',
    'from safetensors.torch import load_file',
    ...(timm ? [`from ${from} import ${name}`] : []),
    '',
    `config = json.load(open(${JSON.stringify(outcome.configFile)}))`,
    `state = load_file(${JSON.stringify(outcome.file)})`,
  ];
  if (!timm) {
    lines.push(
      '# Native names: the workbench’s own layout (linear weights [in, out], patch embedding as a matrix).',
      '# For timm, export again with timm names; to use it here, import it (Checkpoints › Import).',
    );
  } else if (outcome.kind === 'finetune') {
    lines.push(
      '',
      `model = ${name}(**config["model_args"])`,
      'model.load_state_dict(state)  # strict: every name and shape is timm’s',
      'model.eval()',
      '# Inputs: RGB NCHW in [0, 1], normalised with config["pretrained_cfg"]["mean"] / ["std"];',
      `# logits: ${outcome.numClasses} classes${outcome.numClasses > 0 ? ', names in config["mimir"]["classNames"]' : ''}.`,
    );
  } else if (outcome.withDecoder) {
    lines.push(
      '',
      `model = ${name}(**config["model_args"])`,
      '# The file also holds MAE’s decoder (decoder_*, mask_token): load the encoder part into timm,',
      '# or the whole file into MAE’s models_mae.MaskedAutoencoderViT.',
      'missing, unexpected = model.load_state_dict(state, strict=False)',
    );
  } else {
    lines.push(
      '',
      `model = ${name}(**config["model_args"])`,
      'model.load_state_dict(state)  # the MAE encoder: a feature extractor (num_classes 0)',
      'model.eval()',
    );
  }
  return lines.join('\n');
}

export function createCheckpointCatalog(options: { store: RunStore; dataDir: string }): CheckpointCatalog {
  const { store, dataDir } = options;
  const exportsDir = path.join(dataDir, 'exports');
  const importsDir = path.join(dataDir, 'imports');

  async function fromRuns(filter: { kind?: CheckpointKind; runId?: string }): Promise<CheckpointEntry[]> {
    const runs = filter.runId
      ? [store.getRun(filter.runId)].filter((run): run is Run => run !== undefined && run !== null)
      : store.listRuns({ kind: ['pretrain', 'finetune'], status: 'done', limit: 10_000 });
    const entries: CheckpointEntry[] = [];
    for (const run of runs) {
      if (run.kind !== 'pretrain' && run.kind !== 'finetune') continue;
      if (filter.kind && run.kind !== filter.kind) continue;
      const seen = new Set<string>();
      const artifacts = store.listArtifacts(run.id, 'checkpoint');
      for (const artifact of artifacts) {
        if (seen.has(artifact.path) || !(await statOrNull(path.join(artifact.path, CHECKPOINT_MANIFEST_FILE))))
          continue;
        seen.add(artifact.path);
        const epoch = artifact.metadata.epoch;
        entries.push({
          path: artifact.path,
          kind: run.kind,
          origin: 'run',
          runId: run.id,
          name: run.name,
          detail: runDetail(run),
          step: artifact.step,
          epoch: typeof epoch === 'number' ? epoch : null,
          final: run.output?.kind === 'checkpoint' && artifact.path === run.output.path,
          createdAt: artifact.createdAt,
          encoder: encoderKindOf((await readManifestHead(artifact.path))?.modelConfig),
        });
      }
    }
    return entries;
  }

  async function fromImports(kind: CheckpointKind | undefined): Promise<CheckpointEntry[]> {
    const names = await readdir(importsDir).catch(() => []);
    const entries: CheckpointEntry[] = [];
    for (const name of names) {
      const dir = path.join(importsDir, name, 'imported');
      const manifest = await readManifestHead(dir);
      if (!manifest || (kind && manifest.kind !== kind)) continue;
      const config = manifest.runConfig;
      const method =
        typeof config === 'object' && config !== null && 'method' in config && typeof config.method === 'string'
          ? config.method
          : '';
      entries.push({
        path: dir,
        kind: manifest.kind,
        origin: 'import',
        runId: null,
        name,
        detail: method,
        step: manifest.step,
        epoch: manifest.epoch,
        final: true,
        createdAt: manifest.createdAt ? Date.parse(manifest.createdAt) : ((await statOrNull(dir))?.mtimeMs ?? 0),
        encoder: encoderKindOf(manifest.modelConfig),
      });
    }
    return entries;
  }

  /** The run whose folder holds `checkpoint`, for naming its export. */
  function owner(checkpoint: string): Run | null {
    const resolved = path.resolve(checkpoint);
    for (const run of store.listRuns({ kind: ['pretrain', 'finetune'], limit: 10_000 })) {
      if (run.outDir && resolved.startsWith(path.resolve(run.outDir) + path.sep)) return run;
    }
    return null;
  }

  return {
    async list(filter) {
      const entries = [...(await fromRuns(filter)), ...(filter.runId ? [] : await fromImports(filter.kind))];
      return entries.sort((a, b) => b.createdAt - a.createdAt);
    },

    async suggest(checkpoint, naming) {
      const run = owner(checkpoint);
      const manifest = await readManifestHead(path.resolve(checkpoint));
      const base = [
        slug(run?.name ?? path.basename(path.dirname(path.resolve(checkpoint)))),
        manifest ? `step${manifest.step}` : path.basename(checkpoint),
        naming,
      ].join('-');
      const file = path.join(exportsDir, `${base}.safetensors`);
      return { file, exists: (await existingExportFiles(file)).length > 0 };
    },

    async write({ checkpoint, naming, decoder, file: requested, overwrite }) {
      const file = path.resolve(expandHome(requested));
      if (!(await statOrNull(checkpoint))) throw new CatalogError(`No checkpoint at ${checkpoint}.`, 'not-found');
      await asUserError(() => checkExportTargets(file, overwrite));
      const folder = path.dirname(file);
      if ((await statOrNull(folder))?.isDirectory() === false)
        throw new CatalogError(`${folder} is a file, not a folder.`, 'invalid-input');
      await mkdir(folder, { recursive: true });
      const [{ exportCheckpoint }, { torchHierExporter }] = await Promise.all([
        import('@engine/export/export'),
        import('@torch/export'),
      ]);
      const result = await asUserError(() =>
        exportCheckpoint(checkpoint, file, { naming, decoder, overwrite, hierarchical: torchHierExporter }),
      );
      const outcome = {
        file: result.file,
        configFile: result.configFile,
        bytes: (await stat(result.file)).size,
        kind: result.kind,
        naming: result.naming,
        tensors: result.tensors.length,
        withDecoder: result.kind === 'pretrain' && decoder,
        numClasses: result.config.mimir?.numClasses ?? result.config.num_classes,
        architecture: result.config.architecture,
        modelArgs: { ...result.config.model_args },
      };
      return { ...outcome, pytorch: pytorchSnippet(outcome) };
    },

    async importFile({ file: requested, config }) {
      const file = path.resolve(expandHome(requested));
      if (!(await statOrNull(file))) throw new CatalogError(`No file at ${file}.`, 'not-found');
      const base = slug(path.basename(file, '.safetensors'));
      let name = base;
      for (let i = 2; await statOrNull(path.join(importsDir, name)); i++) name = `${base}-${i}`;
      const outDir = path.join(importsDir, name);
      const [{ importToCheckpoint }, tf] = await Promise.all([
        import('@engine/export/export'),
        import('@tensorflow/tfjs-core'),
        import('@tensorflow/tfjs-backend-cpu'),
      ]);
      // Saving copies the weights through tensors: the cpu backend is enough and starts at once (and,
      // in production mode, does not print its advice to install tfjs-node into the app's log).
      tf.env().set('PROD', true);
      if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
      await tf.ready();
      const { saved, model } = await asUserError(() =>
        importToCheckpoint(file, outDir, config ? { config: path.resolve(expandHome(config)) } : {}),
      );
      return {
        checkpoint: saved.path,
        kind: model.kind,
        naming: model.naming,
        tensors: model.weights.size,
        numClasses: model.numClasses,
        classNames: model.classNames,
        method: model.method,
        modelConfig: { ...model.modelConfig },
      };
    },
  };
}
