import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { saveCheckpoint } from '../../../src/engine/checkpoint';
import { BuiltinDataset } from '../../../src/engine/data';
import { classifierForward, initClassifierParams, initMaeParams, type ParamMap } from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { AdamW } from '../../../src/engine/train/optimizer';
import { FinetuneRecord } from '../../../src/shared/finetune-config';
import { BuiltinSource } from '../../../src/shared/dataset-config';
import { modelConfigFromPreset, type ModelConfig } from '../../../src/shared/model-config';

export const MICRO: ModelConfig = modelConfigFromPreset('micro', 16);

export function finetuneRecord(classes: number, method: 'natural' | 'pgd-at' | 'dbat' = 'natural') {
  const names = new BuiltinDataset(BuiltinSource.parse({ kind: 'builtin', classes, imageSize: 16 })).classNames;
  return FinetuneRecord.parse({
    method,
    source: { kind: 'scratch', model: 'micro' },
    dataset: { kind: 'builtin', imageSize: 16, classes },
    threat: { eps: 8 },
    optimizer: { baseLr: 5e-3 },
    numClasses: classes,
    classNames: [...names],
  });
}

/**
 * A micro classifier (16 px, 4 x 4 patches, width 32, depth 2) trained naturally for `steps` AdamW
 * steps on the built-in training set, saved as a fine-tuning checkpoint in `dir`/checkpoints.
 * Returns the checkpoint directory and the parameters (the caller disposes them).
 */
export async function trainedClassifierCheckpoint(
  dir: string,
  options: {
    classes?: number;
    steps?: number;
    seed?: number;
    method?: 'natural' | 'dbat';
    headInitStd?: number;
    lr?: number;
    /** Save head.weight as NaN: the checkpoint of a run that diverged. */
    nanHead?: boolean;
    /** A 16 px model other than the micro ViT (e.g. convstem-micro). */
    model?: ModelConfig;
  } = {},
): Promise<{ path: string; params: ParamMap; trainAccuracy: number }> {
  const classes = options.classes ?? 4;
  const model = options.model ?? MICRO;
  const method = options.method ?? 'natural';
  const outputs = method === 'dbat' ? 2 * classes : classes;
  const rng = new Rng(options.seed ?? 1);
  const params = initClassifierParams(model, outputs, rng, { headInitStd: options.headInitStd ?? 0.02 });
  const train = new BuiltinDataset(BuiltinSource.parse({ kind: 'builtin', classes, imageSize: 16, size: 2048 }));
  const adamw = new AdamW(params, { weightDecay: 0.01 });
  const batch = 64;
  let correct = 0;
  let seen = 0;
  const steps = options.steps ?? 0;
  for (let step = 0; step < steps; step++) {
    const indices = Array.from({ length: batch }, () => rng.int(train.length));
    const data = train.getSync(indices);
    const x = tf.tensor4d(data.images, [batch, 16, 16, 3]);
    const y = tf.oneHot(tf.tensor1d(data.labels, 'int32'), outputs);
    const { value, grads } = tf.variableGrads(() =>
      tf.tidy(() => {
        const logits = classifierForward(params, model, x).logits;
        return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
      }),
    );
    if (step >= steps - 8) {
      const pred = tf.tidy(() => tf.argMax(classifierForward(params, model, x).logits, 1));
      const p = await pred.data();
      data.labels.forEach((l, i) => (correct += p[i] === l ? 1 : 0));
      seen += batch;
      pred.dispose();
    }
    const byName = new Map([...params].map(([name, v]) => [v.name, name]));
    adamw.applyGradients(new Map(Object.entries(grads).map(([k, g]) => [byName.get(k) ?? k, g])), options.lr ?? 3e-3);
    tf.dispose([x, y, value, ...Object.values(grads)]);
  }
  adamw.dispose();
  const head = params.get('head.weight');
  if (options.nanHead && head) head.assign(tf.fill(head.shape, Number.NaN));
  const saved = await saveCheckpoint(path.join(dir, 'checkpoints'), {
    kind: 'finetune',
    epoch: 1,
    step: steps,
    runConfig: JSON.parse(JSON.stringify(finetuneRecord(classes, method))),
    modelConfig: JSON.parse(JSON.stringify(model)),
    params,
    rng: { state: rng.state(), dataIterator: null },
  });
  return { path: saved.path, params, trainAccuracy: seen > 0 ? correct / seen : Number.NaN };
}

/** A pre-training (MAE) checkpoint of the micro model with random weights. */
export async function maeCheckpoint(dir: string): Promise<{ path: string; params: ParamMap }> {
  const params = initMaeParams(MICRO, new Rng(2));
  const saved = await saveCheckpoint(path.join(dir, 'checkpoints'), {
    kind: 'pretrain',
    epoch: 3,
    step: 12,
    runConfig: { mode: 'mimir' },
    modelConfig: JSON.parse(JSON.stringify(MICRO)),
    params,
    rng: { state: new Rng(0).state(), dataIterator: null },
  });
  return { path: saved.path, params };
}

/**
 * A trained micro classifier shared by test files: trained once per version of this file and these
 * options, kept under the system's temporary folder, reused by later test files and runs.
 */
export async function cachedTrainedClassifier(
  options: { classes?: number; steps?: number; seed?: number } = {},
): Promise<{ runDir: string; checkpoint: string }> {
  const { createHash } = await import('node:crypto');
  const { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync } = await import('node:fs');
  const os = await import('node:os');
  const { fileURLToPath } = await import('node:url');
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const key = createHash('sha256').update(source).update(JSON.stringify(options)).digest('hex').slice(0, 16);
  const root = path.join(os.tmpdir(), 'mimir-test-fixtures');
  const runDir = path.join(root, `classifier-${key}`);
  if (!existsSync(path.join(runDir, 'checkpoints', 'latest'))) {
    mkdirSync(root, { recursive: true });
    const scratch = mkdtempSync(path.join(root, '.tmp-'));
    const trained = await trainedClassifierCheckpoint(scratch, options);
    trained.params.forEach((v) => v.dispose());
    try {
      renameSync(scratch, runDir);
    } catch {
      // Another test file trained it first: use theirs.
    }
  }
  const latest = readFileSync(path.join(runDir, 'checkpoints', 'latest'), 'utf8').trim();
  return { runDir, checkpoint: path.join(runDir, 'checkpoints', latest) };
}
