import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgd } from '../../../src/engine/attacks';
import { saveCheckpoint, type CheckpointInput } from '../../../src/engine/checkpoint';
import { openDataset } from '../../../src/engine/data';
import {
  computeLandscape,
  fixedMasks,
  LandscapeCancelledError,
  LandscapeFailedError,
  landscapeFile,
  loadExamples,
  planeDirections,
  type WeightValues,
} from '../../../src/engine/landscape';
import {
  classifierForward,
  disposeParams,
  initClassifierParams,
  initMaeParams,
  maeForward,
  type ParamMap,
} from '../../../src/engine/model';
import { Rng } from '../../../src/engine/rng';
import { FinetuneRecord } from '../../../src/shared/finetune-config';
import { LandscapeResult, type LandscapeRequestInput } from '../../../src/shared/landscape';
import type { RunEvent } from '../../../src/shared/run-events';
import { useBackend } from '../../helpers/backend';
import { microConfig, randomizeParams } from '../model/fixtures';

const CONFIG = microConfig();
const CLASSES = 4;
const EXAMPLES = 12;
const DATASET = { kind: 'builtin', split: 'test', size: 20, classes: CLASSES, imageSize: 16 } as const;
const root = mkdtempSync(path.join(os.tmpdir(), 'mimir-landscape-'));

type Json = CheckpointInput['runConfig'];

interface Saved {
  path: string;
  weights: Map<string, WeightValues>;
}

function valuesOf(params: ParamMap): Map<string, WeightValues> {
  return new Map([...params].map(([name, v]) => [name, { shape: v.shape, data: Float32Array.from(v.dataSync()) }]));
}

/** What a fine-tuning run stores as its runConfig (the fine-tuning code refuses a checkpoint without it). */
function finetuneRecord(method: 'pgd-at' | 'dbat', merge: 'max' | 'logsumexp' = 'max'): Json {
  const record = FinetuneRecord.parse({
    method,
    source: { kind: 'scratch', model: 'micro' },
    dataset: { ...DATASET, split: 'train' },
    threat: { eps: 8 },
    optimizer: { baseLr: 5e-3 },
    dbat: { merge },
    numClasses: CLASSES,
    classNames: ['a', 'b', 'c', 'd'],
  });
  return JSON.parse(JSON.stringify(record)) as Json;
}

async function save(kind: 'pretrain' | 'finetune', params: ParamMap, name: string, runConfig: Json): Promise<Saved> {
  const saved = await saveCheckpoint(
    path.join(root, name),
    {
      kind,
      epoch: 3,
      step: 30,
      runConfig,
      modelConfig: JSON.parse(JSON.stringify(CONFIG)),
      params,
      rng: { state: new Rng(0).state(), dataIterator: null },
    },
    { name: 'epoch-0003' },
  );
  return { path: saved.path, weights: valuesOf(params) };
}

/** Fresh variables holding `weights` moved by a d1 + b d2 (computed in float64, then float32). */
function movedParams(weights: Map<string, WeightValues>, seed: number, a: number, b: number): ParamMap {
  const [d1, d2] = planeDirections(weights, seed);
  return new Map(
    [...weights].map(([name, w]) => {
      const e1 = d1.get(name);
      const e2 = d2.get(name);
      const data = Float32Array.from(w.data, (v, i) => v + a * (e1?.[i] ?? 0) + b * (e2?.[i] ?? 0));
      return [name, tf.variable(tf.tensor(data, [...w.shape]))];
    }),
  );
}

/** Mean CE and accuracy of a classifier on the first EXAMPLES test images, the CE summed in float64 from the logits. */
async function classifierLoss(
  params: ParamMap,
  merge: 'max' | 'logsumexp' | null = null,
): Promise<{ loss: number; accuracy: number }> {
  const classes = CLASSES;
  const dataset = await openDataset(DATASET);
  const batch = await dataset.get(Array.from({ length: EXAMPLES }, (_, i) => i));
  const x = tf.tensor4d(batch.images, [EXAMPLES, 16, 16, 3]);
  const logitsTensor = classifierForward(params, CONFIG, x).logits;
  const logits = Array.from(logitsTensor.dataSync());
  tf.dispose([x, logitsTensor]);
  let loss = 0;
  let correct = 0;
  const width = logits.length / EXAMPLES;
  for (let n = 0; n < EXAMPLES; n++) {
    let z = logits.slice(n * width, (n + 1) * width);
    if (merge !== null) {
      const dummy = z.slice(classes);
      z = z
        .slice(0, classes)
        .map((v, k) =>
          merge === 'max'
            ? Math.max(v, dummy[k] ?? -Infinity)
            : Math.log(Math.exp(v) + Math.exp(dummy[k] ?? -Infinity)),
        );
    }
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    const label = batch.labels[n] ?? 0;
    loss += lse - (z[label] ?? 0);
    if (z.indexOf(max) === label) correct += 1;
  }
  return { loss: loss / EXAMPLES, accuracy: correct / EXAMPLES };
}

function collect(): { events: RunEvent[]; emit: (e: RunEvent) => void } {
  const events: RunEvent[] = [];
  return { events, emit: (e) => events.push(e) };
}

let classifier: Saved;
let dbat: Saved;
let dbatLse: Saved;
let mae: Saved;

beforeAll(async () => {
  await useBackend('cpu');
  const rng = new Rng(21);
  const c = initClassifierParams(CONFIG, CLASSES, rng);
  randomizeParams(c, rng);
  classifier = await save('finetune', c, 'classifier', finetuneRecord('pgd-at'));
  disposeParams(c);
  const d = initClassifierParams(CONFIG, 2 * CLASSES, rng);
  randomizeParams(d, rng);
  dbat = await save('finetune', d, 'dbat', finetuneRecord('dbat'));
  dbatLse = await save('finetune', d, 'dbat-lse', finetuneRecord('dbat', 'logsumexp'));
  disposeParams(d);
  const m = initMaeParams(CONFIG, rng);
  randomizeParams(m, rng);
  mae = await save('pretrain', m, 'mae', { maskRatio: 0.75, normPixLoss: true });
  disposeParams(m);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const request = (saved: Saved, extra: Partial<LandscapeRequestInput> = {}): LandscapeRequestInput => ({
  checkpoint: saved.path,
  dataset: DATASET,
  examples: EXAMPLES,
  grid: [3, 2],
  span: [-0.5, 0.5],
  seed: 5,
  batchSize: 5,
  ...extra,
});

describe.each(['cpu', 'wasm'] as const)('computeLandscape on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('classifier CE: the centre is the checkpoint, another point is the model moved by hand, events and file agree', async () => {
    const tensors = tf.memory().numTensors;
    const out = path.join(root, `ce-${backend}`);
    const { events, emit } = collect();
    const result = await computeLandscape(request(classifier, { grid: 3 }), { outDir: out, emit });
    expect(tf.memory().numTensors).toBe(tensors);

    expect(result.alphas).toEqual([-0.5, 0, 0.5]);
    expect(result.betas).toEqual([-0.5, 0, 0.5]);
    const own = await classifierLoss(await loadParams(classifier));
    console.info(
      `  ${backend}: centre ${result.centre} vs own loss ${own.loss}; grid ${JSON.stringify(result.losses)}`,
    );
    expect(result.centre).toBeCloseTo(own.loss, 5);
    expect(result.accuracy?.[1]?.[1]).toBe(own.accuracy);

    const moved = movedParams(classifier.weights, 5, -0.5, 0.5);
    const corner = await classifierLoss(moved);
    disposeParams(moved);
    expect(result.losses[2]?.[0]).toBeCloseTo(corner.loss, 4);
    expect(result.accuracy?.[2]?.[0]).toBe(corner.accuracy);
    const finite = result.losses.flat().filter((v): v is number => v !== null);
    expect(result.min?.value).toBe(Math.min(...finite));
    expect(result.max?.value).toBe(Math.max(...finite));
    expect((result.max?.value ?? 0) - (result.min?.value ?? 0)).toBeGreaterThan(1e-3);

    expect(result.protocol).toMatchObject({
      loss: 'ce',
      examples: EXAMPLES,
      seed: 5,
      checkpointKind: 'finetune',
      checkpointEpoch: 3,
      backend,
      dbatMerge: null,
      directions: { normalization: 'filter', ignoreBiasNorm: true },
    });
    const file = LandscapeResult.parse(JSON.parse(readFileSync(landscapeFile(out), 'utf8')));
    expect(file).toEqual(result);

    const types = events.map((e) => e.type);
    expect(types[0]).toBe('started');
    expect(types.at(-1)).toBe('done');
    expect(types.filter((t) => t === 'metrics')).toHaveLength(9);
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.map((e) => e.step)).toEqual([3, 6, 9]);
    const metrics = events.filter((e) => e.type === 'metrics');
    expect(metrics[4]?.values).toMatchObject({ alpha: 0, beta: 0, loss: result.centre ?? NaN });
  });

  it('pre-training recon: the centre is the MAE loss with the seeded masks; the run repeats exactly', async () => {
    const tensors = tf.memory().numTensors;
    const first = await computeLandscape(request(mae), { outDir: path.join(root, `recon-${backend}`), ...collect() });
    const again = await computeLandscape(request(mae), { outDir: path.join(root, `recon2-${backend}`), ...collect() });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(again.losses).toEqual(first.losses);
    expect(first.accuracy).toBeNull();
    expect(first.protocol.recon).toEqual({ maskRatio: 0.75, normPixLoss: true });
    expect(first.betas).toEqual([-0.5, 0.5]);
    expect(first.centre).toBeNull(); // two rows: beta = 0 is not on the grid

    // The point (alpha 0, beta 0.5) against maeForward on hand-moved weights with the same masks.
    const dataset = await openDataset(DATASET);
    const examples = await loadExamples(dataset, EXAMPLES, 5);
    const masks = fixedMasks(examples, CONFIG, 0.75, 5);
    const moved = movedParams(mae.weights, 5, 0, 0.5);
    let sum = 0;
    examples.batches.forEach((b, i) => {
      const mask = masks[i];
      if (!mask) throw new Error('mask');
      const loss = tf.tidy(() => maeForward(moved, CONFIG, b.images, mask).loss);
      sum += (loss.dataSync()[0] ?? NaN) * b.labels.length;
      loss.dispose();
    });
    const want = sum / EXAMPLES;
    console.info(`  ${backend}: recon at (0, 0.5) ${first.losses[1]?.[1]} vs hand-moved ${want}`);
    expect(first.losses[1]?.[1]).toBeCloseTo(want, 5);
    masks.forEach((m) => m.dispose());
    examples.dispose();
    disposeParams(moved);
  });
});

async function loadParams(saved: Saved): Promise<ParamMap> {
  return new Map([...saved.weights].map(([name, w]) => [name, tf.variable(tf.tensor(w.data, [...w.shape]))]));
}

describe('computeLandscape, one backend', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('gives the same landscape on cpu and wasm within float32 tolerance', async () => {
    const cpu = await computeLandscape(request(classifier), { outDir: path.join(root, 'agree-cpu'), ...collect() });
    await useBackend('wasm');
    const wasm = await computeLandscape(request(classifier), { outDir: path.join(root, 'agree-wasm'), ...collect() });
    await useBackend('cpu');
    const worst = Math.max(
      ...cpu.losses.flat().map((v, i) => Math.abs((v ?? NaN) - (wasm.losses.flat()[i] ?? NaN)) / Math.abs(v ?? 1)),
    );
    console.info(`  cpu vs wasm worst relative difference ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
  });

  it('pgd-ce: the centre is the loss PGD reaches on the checkpoint itself, above the clean loss', async () => {
    const pgdSettings = { steps: 3, eps: 8 / 255, alpha: 2 / 255 };
    const adv = await computeLandscape(request(classifier, { loss: 'pgd-ce', grid: [1, 1], pgd: pgdSettings }), {
      outDir: path.join(root, 'pgd'),
      ...collect(),
    });
    const clean = await computeLandscape(request(classifier, { grid: [1, 1] }), {
      outDir: path.join(root, 'pgd-clean'),
      ...collect(),
    });
    const params = await loadParams(classifier);
    const dataset = await openDataset(DATASET);
    const examples = await loadExamples(dataset, EXAMPLES, 5);
    let sum = 0;
    let robust = 0;
    for (const b of examples.batches) {
      const model = (x: tf.Tensor4D) => classifierForward(params, CONFIG, x, { trainParams: false }).logits;
      const r = await pgd(model, b.images, b.labels, {
        threat: 'linf',
        ...pgdSettings,
        keep: 'last',
        seed: 5,
        ids: b.ids,
      });
      r.xAdv.dispose();
      sum += r.loss.reduce((s, v) => s + v, 0);
      robust += r.robust.filter(Boolean).length;
    }
    examples.dispose();
    disposeParams(params);
    console.info(`  centre: clean CE ${clean.centre}, PGD-3 CE ${adv.centre} (direct ${sum / EXAMPLES})`);
    expect(adv.centre).toBeCloseTo(sum / EXAMPLES, 5);
    expect(adv.accuracy?.[0]?.[0]).toBe(robust / EXAMPLES);
    expect(adv.centre ?? 0).toBeGreaterThan(clean.centre ?? Infinity);
    expect(adv.protocol.pgd).toMatchObject({ steps: 3, threat: 'linf', version: 'pgd/1' });
  });

  it('scores a DBAT head of 2C outputs as its record says (max or logsumexp of z_y, z_{y+C})', async () => {
    for (const [saved, merge] of [
      [dbat, 'max'],
      [dbatLse, 'logsumexp'],
    ] as const) {
      const result = await computeLandscape(request(saved, { grid: [1, 1] }), {
        outDir: path.join(root, `dbat-${merge}`),
        ...collect(),
      });
      const params = await loadParams(saved);
      const own = await classifierLoss(params, merge);
      disposeParams(params);
      console.info(`  DBAT ${merge}: centre ${result.centre} vs own ${own.loss}`);
      expect(result.protocol.dbatMerge).toBe(merge);
      expect(result.centre).toBeCloseTo(own.loss, 5);
      expect(result.accuracy?.[0]?.[0]).toBe(own.accuracy);
    }
  });

  it('stops clearly on a wrong loss kind, a mismatched image size or a cancel, leaking nothing and writing nothing', async () => {
    const tensors = tf.memory().numTensors;
    const wrong = collect();
    await expect(
      computeLandscape(request(mae, { loss: 'ce' }), { outDir: path.join(root, 'wrong'), emit: wrong.emit }),
    ).rejects.toThrow(/ce loss needs a fine-tuning checkpoint.*pretrain one \(use recon\)/);
    expect(wrong.events.at(-1)?.type).toBe('failed');

    await expect(
      computeLandscape(request(classifier, { dataset: { ...DATASET, imageSize: 32 } }), {
        outDir: path.join(root, 'size'),
        ...collect(),
      }),
    ).rejects.toBeInstanceOf(LandscapeFailedError);

    const controller = new AbortController();
    const cancelled = collect();
    const out = path.join(root, 'cancelled');
    await expect(
      computeLandscape(request(classifier, { grid: 3 }), {
        outDir: out,
        signal: controller.signal,
        emit: (e) => {
          cancelled.emit(e);
          if (e.type === 'progress') controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(LandscapeCancelledError);
    expect(cancelled.events.filter((e) => e.type === 'metrics')).toHaveLength(3);
    expect(existsSync(landscapeFile(out))).toBe(false);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});
