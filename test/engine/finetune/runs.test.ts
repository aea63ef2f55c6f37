import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FINETUNE_METHODS, type FinetuneConfigInput } from '../../../src/shared/finetune-config';
import { RunEvent } from '../../../src/shared/run-events';
import { GENERALIST_STATE_DIR, loadClassifierCheckpoint, runFinetuning } from '../../../src/engine/finetune';
import { RunCancelledError, RunFailedError, collectEvents } from '../../../src/engine/train/run-lifecycle';
import { useBackend } from '../../helpers/backend';
import { MICRO_DATASET } from './helpers';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-finetune-run-'));

/** Two steps per epoch of 16 images, cheap attacks, a small held-out check. */
function quick(method: string, overrides: Partial<FinetuneConfigInput> = {}): FinetuneConfigInput {
  return {
    method: method as FinetuneConfigInput['method'],
    source: { kind: 'scratch', model: 'micro' },
    dataset: { ...MICRO_DATASET, size: 32 },
    epochs: 1,
    batchSize: 16,
    attack: { steps: 2 },
    apgdAt: { steps: 3 },
    heldOut: { size: 16, pgdSteps: 2 },
    optimizer: { warmupEpochs: 0 },
    checkpointEvery: 1,
    ...overrides,
  };
}

describe('fine-tuning runs (wasm)', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('every method runs, reports finite metrics, checkpoints a classifier the evaluator can load, and frees its tensors', async () => {
    for (const method of FINETUNE_METHODS) {
      const before = tf.memory().numTensors;
      const { events, emit } = collectEvents();
      const outDir = tmp();
      const done = await runFinetuning(quick(method), { outDir, emit });
      expect(tf.memory().numTensors, `${method} leaked tensors`).toBe(before);
      for (const event of events) RunEvent.parse(event);
      expect(events[0]).toMatchObject({ type: 'started', runKind: 'finetune', totalSteps: 2, stepsPerEpoch: 2 });
      const steps = events.filter((e) => e.type === 'metrics' && e.values.loss !== undefined);
      expect(steps).toHaveLength(2);
      for (const e of steps) {
        if (e.type !== 'metrics') continue;
        expect(Object.values(e.values).every(Number.isFinite), `${method}: ${JSON.stringify(e.values)}`).toBe(true);
        expect(e.values.clean_acc).toBeGreaterThanOrEqual(0);
        expect(e.values.adv_acc !== undefined).toBe(method !== 'natural');
      }
      const epochEnd = events.find((e) => e.type === 'metrics' && e.values.train_loss !== undefined);
      expect(epochEnd?.type === 'metrics' && epochEnd.values.heldout_pgd_acc !== undefined).toBe(true);
      expect(done.output).toEqual({ kind: 'checkpoint', path: path.join(outDir, 'checkpoints', 'epoch-0001') });
      expect(existsSync(path.join(outDir, GENERALIST_STATE_DIR))).toBe(method === 'generalist');

      const model = await loadClassifierCheckpoint(outDir);
      expect(model).toMatchObject({ method, numClasses: 10, outputs: method === 'dbat' ? 20 : 10 });
      expect(model.classNames[0]).toBe('horizontal stripes');
      const scores = model.predict(tf.zeros([2, 16, 16, 3]));
      expect(scores.shape).toEqual([2, 10]);
      scores.dispose();
      model.dispose();
      const manifest = JSON.parse(readFileSync(path.join(done.output?.path ?? '', 'checkpoint.json'), 'utf8'));
      expect(manifest.kind).toBe('finetune');
      expect(manifest.runConfig).toMatchObject({
        method,
        numClasses: 10,
        threat: { eps: 8 },
        optimizer: { baseLr: 5e-3 },
      });
    }
  });

  it('runs with RandAugment and MixUp/CutMix (soft targets) for natural, pgd-at and dbat', async () => {
    for (const method of ['natural', 'pgd-at', 'dbat']) {
      const { events, emit } = collectEvents();
      await runFinetuning(quick(method, { randAugment: {}, mixup: {} }), { outDir: tmp(), emit });
      const losses = events.flatMap((e) =>
        e.type === 'metrics' && e.values.loss !== undefined ? [e.values.loss] : [],
      );
      expect(losses.length).toBe(2);
      expect(losses.every(Number.isFinite)).toBe(true);
    }
  });

  it('Generalist: a cancelled run resumed from its checkpoint ends with the weights of an uninterrupted one', async () => {
    const config = quick('generalist', {
      epochs: 3,
      heldOut: { size: 0 },
      generalist: { syncStart: 0, syncEvery: 2, mixRampStart: 0.3 },
    });
    const whole = tmp();
    await runFinetuning(config, { outDir: whole, emit: () => undefined });

    const cut = tmp();
    const controller = new AbortController();
    await expect(
      runFinetuning(config, {
        outDir: cut,
        signal: controller.signal,
        emit: (event) => {
          if (event.type === 'checkpoint' && event.epoch === 2) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(RunCancelledError);
    expect(
      readdirSync(path.join(cut, GENERALIST_STATE_DIR))
        .filter((n) => n.startsWith('epoch-'))
        .sort(),
    ).toEqual(['epoch-0001', 'epoch-0002']);
    const { events, emit } = collectEvents();
    await runFinetuning(undefined, { outDir: cut, resume: true, emit });
    expect(events[0]).toMatchObject({ type: 'started', step: 4, epoch: 2 });
    const weights = (dir: string) => readFileSync(path.join(dir, 'checkpoints', 'epoch-0003', 'model.safetensors'));
    expect(weights(cut).equals(weights(whole))).toBe(true);
    const state = (dir: string) =>
      readFileSync(path.join(dir, GENERALIST_STATE_DIR, 'epoch-0003', 'model.safetensors'));
    expect(state(cut).equals(state(whole))).toBe(true);
  });

  it('stops on a diverging loss, naming the last good checkpoint', async () => {
    const { events, emit } = collectEvents();
    const outDir = tmp();
    await expect(
      runFinetuning(
        quick('natural', { epochs: 4, optimizer: { warmupEpochs: 0, baseLr: 1e12 }, heldOut: { size: 0 } }),
        {
          outDir,
          emit,
        },
      ),
    ).rejects.toBeInstanceOf(RunFailedError);
    const failed = events.at(-1);
    if (failed?.type !== 'failed') throw new Error(`expected a failed event, got ${JSON.stringify(failed)}`);
    expect(failed.message).toMatch(/became (NaN|Infinity|-Infinity) at step \d+ \(epoch \d+\); training stopped/);
    if (failed.lastCheckpoint !== null) {
      expect(failed.message).toContain(failed.lastCheckpoint);
      expect(existsSync(path.join(failed.lastCheckpoint, 'model.safetensors'))).toBe(true);
    }
  });

  it('refuses bad input with a message that says what is wrong', async () => {
    const failure = async (config: unknown, options: { resume?: boolean } = {}) => {
      const { events, emit } = collectEvents();
      await expect(runFinetuning(config, { outDir: tmp(), emit, ...options })).rejects.toBeInstanceOf(RunFailedError);
      const last = events.at(-1);
      return last?.type === 'failed' ? last.message : '';
    };
    expect(await failure({ ...quick('pgd-at'), method: 'fgsm-at' })).toMatch(/method: method must be one of/);
    expect(await failure({ ...quick('pgd-at'), source: undefined })).toMatch(/source/);
    expect(await failure({ ...quick('pgd-at'), threat: { eps: 8 }, attack: { alpha: 40 } })).toMatch(
      /attack.alpha 40 is over 4x/,
    );
    expect(await failure(quick('pgd-at', { source: { kind: 'pretrained', checkpoint: '/nonexistent/run' } }))).toMatch(
      /--from \/nonexistent\/run: .*no such checkpoint or run folder/,
    );
    expect(
      await failure(
        quick('pgd-at', {
          dataset: { ...MICRO_DATASET, imageSize: 24 },
          source: { kind: 'scratch', model: { ...microModel(), imageSize: 16 } },
        }),
      ),
    ).toMatch(/expects 16 px images but the dataset has 24 px/);
    expect(await failure(undefined, { resume: true })).toMatch(/Nothing to resume in .*: it holds no checkpoint/);
  });
});

function microModel() {
  return {
    imageSize: 16,
    patchSize: 4,
    width: 32,
    depth: 2,
    heads: 2,
    decoderWidth: 32,
    decoderDepth: 1,
    decoderHeads: 2,
  };
}
