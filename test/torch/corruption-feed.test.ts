import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { openDataset } from '../../src/engine/data';
import { evaluate, requestedExamples } from '../../src/engine/evaluate/evaluate';
import { planEvaluation } from '../../src/engine/evaluate/plan';
import { EvaluationRequest, type EvaluationRequestInput } from '../../src/shared/evaluation';
import { feedCorruptions } from '../../src/torch/corruption-feed';
import { evaluateOnTorch } from '../../src/torch/evaluate';
import { useBackend } from '../helpers/backend';
import { cachedTrainedClassifier } from '../engine/export/fixtures';
import { findPythonWithTorch } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * The PyTorch engine evaluates the corrupted images the tfjs evaluator evaluates, byte for byte: the Node
 * side makes them with the one implementation (corruption-feed.ts) and Python reads them in turn
 * (corruption_feed.py), the feed never more than its byte budget ahead of the reader. The same checkpoint
 * (a ViT, which both engines run) gets the same corruption table from both; a feed that fails stops Python.
 */

// Every batch of corrupted images made, keyed by cell and example ids; `failing` makes the next one throw.
const made = vi.hoisted(() => new Map<string, string>());
const failing = vi.hoisted(() => ({ on: false }));
vi.mock('../../src/engine/evaluate/corrupted-batch', async (original) => {
  const actual = await original<typeof import('../../src/engine/evaluate/corrupted-batch')>();
  return {
    ...actual,
    corruptBatch: async (...args: Parameters<typeof actual.corruptBatch>) => {
      if (failing.on) throw new Error('no sharp today');
      const images = await actual.corruptBatch(...args);
      const [, ids, , cell] = args;
      made.set(`${cell.type}/${cell.severity}/${ids.join(',')}`, sha256(images));
      return images;
    },
  };
});

function sha256(images: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(images.buffer, images.byteOffset, images.byteLength))
    .digest('hex');
}

const DATASET = { kind: 'builtin', split: 'test', imageSize: 16, classes: 4, size: 200 } as const;

/**
 * Python reads `count` files from `folder` through CorruptionFeed, as evaluate_run.py does; per file, the
 * sha256 of the images it got and how many feed files lay in the folder when it took it.
 */
function pythonReader(folder: string, sizes: number[]): Promise<{ sha: string; waiting: number }[]> {
  const found = findPythonWithTorch();
  if (!found.python) throw new Error(found.reason);
  const script = [
    'import hashlib, json, os, sys, time',
    'from mimir_torch.corruption_feed import CorruptionFeed',
    'folder, sizes = sys.argv[1], json.loads(sys.argv[2])',
    'feed = CorruptionFeed(folder, lambda: False)',
    'out = []',
    'for n in sizes:',
    "    file = os.path.join(folder, f'{feed.index:06d}.npy')",
    '    while not os.path.exists(file): time.sleep(0.01)',
    "    waiting = len([f for f in os.listdir(folder) if f.endswith('.npy')])",
    '    images = feed.take(n, 16)',
    "    out.append({'sha': hashlib.sha256(images.tobytes()).hexdigest(), 'waiting': waiting})",
    'print(json.dumps(out))',
  ].join('\n');
  const child = spawn(found.python.executable, ['-c', script, folder, JSON.stringify(sizes)], {
    env: { ...process.env, PYTHONPATH: PYTHON_DIR, OMP_NUM_THREADS: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(stdout) as { sha: string; waiting: number }[]) : reject(new Error(stderr)),
    ),
  );
}

/**
 * A temp folder of this test's own as os.tmpdir() (TMPDIR) until restore(): the feed's folder is made
 * there, so other test files' evaluations running at the same time do not show in feedFolders().
 */
function privateTmpDir(): { restore: () => void; feedFolders: () => string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-tmp-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return {
    restore: () => {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    },
    feedFolders: () => readdirSync(dir).filter((f) => f.startsWith('mimir-corrupted-')),
  };
}

describe('the corrupted images of a PyTorch evaluation', () => {
  let checkpoint: string;

  beforeAll(async () => {
    await useBackend('wasm');
    checkpoint = (await cachedTrainedClassifier({ classes: 4, steps: 150 })).runDir;
  }, 300_000);

  it('are byte for byte those the tfjs evaluator evaluates, read in turn by Python with one file waiting at most', async () => {
    const input: EvaluationRequestInput = {
      checkpoint,
      dataset: DATASET,
      examples: { count: 10, pick: 'random' },
      attacks: [
        { attack: 'natural' },
        { attack: 'corruptions', types: ['shot-noise', 'jpeg', 'impulse-noise'], severities: [5, 2] },
      ],
      seed: 7,
      batchSize: 4,
    };
    const report = await evaluate(input, { outDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-')) });
    expect(report.corruptions?.cells.map((c) => `${c.type}/${c.severity}`)).toEqual([
      'shot-noise/2',
      'shot-noise/5',
      'jpeg/2',
      'jpeg/5',
      'impulse-noise/2',
      'impulse-noise/5',
    ]);
    // 3 batches (4, 4, 2 examples) x 6 cells.
    expect(made.size).toBe(18);

    const request = EvaluationRequest.parse(input);
    const dataset = await openDataset(request.dataset);
    const ids = requestedExamples(request, dataset.length);
    const plan = planEvaluation(request, dataset.imageSize).corruptions;
    if (!plan) throw new Error('no corruptions planned');
    const folder = mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-'));
    const sizes = [4, 4, 2].flatMap((n) => Array<number>(6).fill(n));
    const reading = pythonReader(folder, sizes);
    const tfjsMade = new Map(made);
    // A budget below one file's bytes: one file at a time ahead of the reader.
    await feedCorruptions({
      folder,
      dataset,
      ids,
      batchSize: 4,
      plan,
      seed: 7,
      signal: new AbortController().signal,
      budgetBytes: 1,
    });
    const read = await reading;

    const expected = [0, 4, 8].flatMap((start) => {
      const batch = ids.slice(start, start + 4);
      return ['shot-noise', 'jpeg', 'impulse-noise'].flatMap((type) =>
        [2, 5].map((severity) => tfjsMade.get(`${type}/${severity}/${batch.join(',')}`)),
      );
    });
    expect(expected.every((sha) => sha !== undefined)).toBe(true);
    expect(read.map((r) => r.sha)).toEqual(expected);
    // Different cells are different images (a feed of one repeated batch would not pass).
    expect(new Set(expected).size).toBe(18);
    expect(Math.max(...read.map((r) => r.waiting))).toBe(1);
    expect(readdirSync(folder)).toEqual([]);
  }, 300_000);
  it('fill the same corruption table on the PyTorch engine as on tfjs for the same checkpoint', async () => {
    const input: EvaluationRequestInput = {
      checkpoint,
      dataset: DATASET,
      examples: { count: 10 },
      attacks: [{ attack: 'natural' }, { attack: 'corruptions', types: ['gaussian-noise', 'jpeg', 'contrast'] }],
      seed: 3,
      batchSize: 4,
    };
    const tfjs = await evaluate(input, { outDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-')) });
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-'));
    const tmp = privateTmpDir();
    const torch = await evaluateOnTorch(
      { ...input, engine: 'torch' },
      { outDir, emit: () => undefined, device: 'cpu', threads: 1 },
    ).finally(tmp.restore);
    expect(torch.backend).toBe('torch');
    expect(torch.naturalAccuracy).toBe(tfjs.naturalAccuracy);
    expect(torch.corruptions?.cells).toEqual(tfjs.corruptions?.cells);
    expect(torch.corruptions?.cells).toHaveLength(15);
    expect(torch.corruptions?.mean).toBeCloseTo(tfjs.corruptions?.mean ?? -1, 12);
    expect(torch.corruptions).toMatchObject({ table: 'cifar10', seed: 3, backend: 'torch' });
    // The feed's folder is gone.
    expect(tmp.feedFolders()).toEqual([]);
  }, 300_000);

  it('stop Python and say so when corrupting fails, leaving no folder behind', async () => {
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'mimir-feed-'));
    const tmp = privateTmpDir();
    failing.on = true;
    try {
      await expect(
        evaluateOnTorch(
          {
            checkpoint,
            dataset: DATASET,
            examples: { count: 4 },
            attacks: [{ attack: 'natural' }, { attack: 'corruptions', types: ['jpeg'], severities: [1] }],
            engine: 'torch',
          },
          { outDir, emit: () => undefined, device: 'cpu' },
        ),
      ).rejects.toThrow(/^Corrupting the images for the PyTorch engine failed: no sharp today$/);
    } finally {
      failing.on = false;
      tmp.restore();
    }
    expect(tmp.feedFolders()).toEqual([]);
  }, 300_000);
});
