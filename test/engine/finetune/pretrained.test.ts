import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../../src/engine/checkpoint';
import { FinetuneSourceError, initialClassifier, runFinetuning } from '../../../src/engine/finetune';
import { disposeParams } from '../../../src/engine/model';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import { RunFailedError, collectEvents } from '../../../src/engine/train/run-lifecycle';
import { Rng } from '../../../src/engine/rng';
import { useBackend } from '../../helpers/backend';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-finetune-pretrained-'));

describe('fine-tuning from a MIMIR pre-training checkpoint', () => {
  let pretrainDir = '';
  let pretrainCheckpoint = '';

  beforeAll(async () => {
    await useBackend('wasm');
    pretrainDir = tmp();
    const done = await runPretraining(
      {
        mode: 'mimir',
        model: 'micro',
        dataset: { kind: 'builtin', size: 64, imageSize: 16 },
        epochs: 1,
        batchSize: 32,
        optimizer: { warmupEpochs: 0, baseLr: 2e-3 },
      },
      { outDir: pretrainDir, emit: () => undefined },
    );
    pretrainCheckpoint = done.output?.path ?? '';
  });

  it("copies the encoder's weights exactly and starts fc_norm and the head fresh", async () => {
    const stored = await loadCheckpoint(pretrainCheckpoint);
    for (const where of [pretrainDir, pretrainCheckpoint]) {
      const initial = await initialClassifier({ kind: 'pretrained', checkpoint: where }, 16, 10, new Rng(1), 2e-5);
      expect(initial.pretrained?.path).toBe(pretrainCheckpoint);
      expect(initial.modelConfig).toEqual(stored.manifest.modelConfig);
      let copied = 0;
      for (const [name, variable] of initial.params) {
        const values = Float32Array.from(await variable.data());
        if (name.startsWith('fc_norm.') || name.startsWith('head.')) continue;
        const source = stored.weights.get(name);
        expect(source, name).toBeDefined();
        expect(variable.shape).toEqual(source?.shape);
        expect(values, name).toEqual(source?.data);
        copied++;
      }
      // cls_token, patch_embed (2) and 12 tensors per block of the micro model's 2.
      expect(copied).toBe(3 + 12 * 2);
      expect(
        Array.from(await (initial.params.get('fc_norm.weight') ?? tf.scalar(0)).data()).every((v) => v === 1),
      ).toBe(true);
      expect(Array.from(await (initial.params.get('fc_norm.bias') ?? tf.scalar(1)).data()).every((v) => v === 0)).toBe(
        true,
      );
      const head = Array.from(await (initial.params.get('head.weight') ?? tf.scalar(0)).data());
      const std = Math.sqrt(head.reduce((s, v) => s + v * v, 0) / head.length);
      expect(head).toHaveLength(32 * 10);
      expect(std).toBeGreaterThan(1.5e-5);
      expect(std).toBeLessThan(2.5e-5);
      expect(Array.from(await (initial.params.get('head.bias') ?? tf.scalar(1)).data()).every((v) => v === 0)).toBe(
        true,
      );
      // The MAE's final norm and decoder are not part of the classifier.
      expect([...initial.params.keys()].some((n) => n.startsWith('decoder') || n === 'norm.weight')).toBe(false);
      disposeParams(initial.params);
    }
  });

  it('fine-tunes from it (run folder as --from), recording where the encoder came from; a fine-tuning checkpoint as the source is refused', async () => {
    const outDir = tmp();
    const { events, emit } = collectEvents();
    const done = await runFinetuning(
      {
        method: 'pgd-at',
        source: { kind: 'pretrained', checkpoint: pretrainDir },
        dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        epochs: 1,
        batchSize: 16,
        attack: { steps: 2 },
        heldOut: { size: 16, pgdSteps: 2 },
      },
      { outDir, emit },
    );
    expect(done.output).toEqual({ kind: 'checkpoint', path: path.join(outDir, 'checkpoints', 'epoch-0001') });
    const log = events.find((e) => e.type === 'log');
    expect(log?.type === 'log' && log.message).toContain(`pgd-at fine-tuning from ${pretrainCheckpoint}`);
    const written = JSON.parse(readFileSync(path.join(outDir, 'config.json'), 'utf8'));
    expect(written.pretrained).toEqual({ path: pretrainCheckpoint, epoch: 1 });
    expect(written.source).toEqual({ kind: 'pretrained', checkpoint: pretrainDir });

    await expect(
      initialClassifier({ kind: 'pretrained', checkpoint: outDir }, 16, 10, new Rng(1), 2e-5),
    ).rejects.toThrow(FinetuneSourceError);
    const again = collectEvents();
    await expect(
      runFinetuning(
        {
          method: 'natural',
          source: { kind: 'pretrained', checkpoint: outDir },
          dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        },
        { outDir: tmp(), emit: again.emit },
      ),
    ).rejects.toBeInstanceOf(RunFailedError);
    const failed = again.events.at(-1);
    expect(failed?.type === 'failed' && failed.message).toMatch(
      /is a fine-tuning checkpoint \(it already has a classifier head\); fine-tuning starts from a pre-training checkpoint.*--resume/,
    );
    // A pre-training checkpoint of another image size is refused too.
    await expect(
      initialClassifier({ kind: 'pretrained', checkpoint: pretrainDir }, 32, 10, new Rng(1), 2e-5),
    ).rejects.toThrow(/pre-trained on 16 px images but the dataset has 32 px ones/);
  });
});
