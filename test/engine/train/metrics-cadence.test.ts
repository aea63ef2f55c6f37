import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runFinetuning } from '../../../src/engine/finetune';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import {
  RunCancelledError,
  RunFailedError,
  collectEvents,
  type TrainingRunOptions,
} from '../../../src/engine/train/run-lifecycle';
import { FINETUNE_METHODS } from '../../../src/shared/finetune-config';
import type { RunEvent } from '../../../src/shared/run-events';
import { useBackend } from '../../helpers/backend';
import { countStepReads, spyTensorReads } from '../../helpers/step-reads';

/** Which call of each step function returns a NaN loss (0: none); set by a test, reset after each. */
const inject = vi.hoisted(() => ({ pretrainAt: 0, finetuneAt: 0, pretrainCalls: 0, finetuneCalls: 0 }));
/** Called after each pre-training step (a test cancels a run from it). */
const onPretrainStep = vi.hoisted(() => ({ call: (_count: number): void => undefined }));

vi.mock('../../../src/engine/pretrain/step', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/engine/pretrain/step')>();
  return {
    ...original,
    pretrainStep: (...args: Parameters<typeof original.pretrainStep>) => {
      const result = original.pretrainStep(...args);
      inject.pretrainCalls += 1;
      onPretrainStep.call(inject.pretrainCalls);
      if (inject.pretrainCalls !== inject.pretrainAt) return result;
      result.loss.dispose();
      return { ...result, loss: tf.scalar(NaN) };
    },
  };
});

vi.mock('../../../src/engine/finetune/step', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/engine/finetune/step')>();
  return {
    ...original,
    finetuneStep: async (...args: Parameters<typeof original.finetuneStep>) => {
      const result = await original.finetuneStep(...args);
      inject.finetuneCalls += 1;
      if (inject.finetuneCalls !== inject.finetuneAt) return result;
      result.loss.dispose();
      return { ...result, loss: tf.scalar(NaN) };
    },
  };
});

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-cadence-'));

/** 24 images in batches of 4: 6 steps per epoch, a checkpoint after each epoch. */
const DATA = { dataset: { kind: 'builtin', size: 24, imageSize: 16 }, batchSize: 4, checkpointEvery: 1 };

const RUNS = {
  // MIMIR: the first-batch penalty check, the penalty share and the gradient ratio are read late too.
  pretrain: (metricsEvery: number, options: TrainingRunOptions) =>
    runPretraining(
      {
        mode: 'mimir',
        model: 'micro',
        ...DATA,
        epochs: 2,
        attack: { steps: 1 },
        mi: { estimator: 'hsic', penaltyGradEvery: 5 },
        optimizer: { clipGrad: 1 },
        metricsEvery,
      },
      options,
    ),
  finetune: (metricsEvery: number, options: TrainingRunOptions) =>
    runFinetuning(
      {
        method: 'trades',
        source: { kind: 'scratch', model: 'micro' },
        ...DATA,
        epochs: 2,
        attack: { steps: 1 },
        heldOut: { size: 8, pgdSteps: 1 },
        optimizer: { clipGrad: 1 },
        metricsEvery,
      },
      options,
    ),
};
type Kind = keyof typeof RUNS;
const KINDS = Object.keys(RUNS) as Kind[];

/** The events with what differs between two identical runs (times, the run's folder) taken out. */
function comparable(events: RunEvent[], outDir: string): unknown[] {
  return events.map((event) => {
    const text = JSON.stringify(event).replaceAll(outDir, '<out>');
    const copy = JSON.parse(text) as Record<string, unknown>;
    if (copy.type === 'progress') {
      delete copy.imagesPerSecond;
      delete copy.etaSeconds;
    }
    if (copy.type === 'metrics') delete (copy.values as Record<string, unknown>).images_per_s;
    if (copy.type === 'done') {
      delete copy.seconds;
      delete (copy.summary as Record<string, unknown>).images_per_s;
    }
    return copy;
  });
}

const checkpointsOf = (outDir: string): string[] =>
  existsSync(path.join(outDir, 'checkpoints'))
    ? readdirSync(path.join(outDir, 'checkpoints'))
        .filter((n) => n.startsWith('epoch-'))
        .sort()
    : [];

describe('metrics read every few steps (wasm)', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  afterEach(() => {
    Object.assign(inject, { pretrainAt: 0, finetuneAt: 0, pretrainCalls: 0, finetuneCalls: 0 });
    onPretrainStep.call = () => undefined;
    vi.restoreAllMocks();
  });

  it.each(KINDS)('%s: metricsEvery 4 emits the same events as metricsEvery 1, every step', async (kind) => {
    const runs = [];
    for (const every of [1, 4]) {
      const outDir = tmp();
      const { events, emit } = collectEvents();
      await RUNS[kind](every, { outDir, emit });
      runs.push({ events, outDir });
    }
    const [one, four] = runs.map(({ events, outDir }) => comparable(events, outDir));
    const steps = runs[1]?.events.flatMap((e) => (e.type === 'progress' ? [e.step] : []));
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(four).toEqual(one);
    const metrics = runs[1]?.events.filter((e) => e.type === 'metrics' && e.values.loss !== undefined) ?? [];
    expect(metrics).toHaveLength(12);
    if (kind === 'pretrain') {
      // The first-batch penalty check, read with step 1's metrics, still comes before them.
      const penaltyLog = runs[1]?.events.findIndex(
        (e) => e.type === 'log' && /lambda \* MI \/ recon = /.test(e.message),
      );
      const firstMetrics = runs[1]?.events.findIndex((e) => e.type === 'metrics');
      expect(penaltyLog).toBeGreaterThan(0);
      expect(penaltyLog).toBeLessThan(firstMetrics ?? 0);
      expect(metrics.filter((e) => e.type === 'metrics' && 'penalty_grad_ratio' in e.values)).toHaveLength(3);
    }
  });

  it.each([
    // Found at the epoch's end, before its checkpoint: no checkpoint at all.
    { kind: 'pretrain' as const, at: 5, kept: [] as string[] },
    // Found 2 steps late, mid-epoch 2: the checkpoint of epoch 1 (step 6) stays the last.
    { kind: 'pretrain' as const, at: 8, kept: ['epoch-0001'] },
    { kind: 'finetune' as const, at: 7, kept: ['epoch-0001'] },
  ])('$kind: a NaN loss at step $at, read late, stops the run naming step $at', async ({ kind, at, kept }) => {
    if (kind === 'pretrain') inject.pretrainAt = at;
    else inject.finetuneAt = at;
    const outDir = tmp();
    const { events, emit } = collectEvents();
    const before = tf.memory().numTensors;
    await expect(RUNS[kind](4, { outDir, emit })).rejects.toBeInstanceOf(RunFailedError);
    // The steps after `at` ran before the read found it.
    expect(kind === 'pretrain' ? inject.pretrainCalls : inject.finetuneCalls).toBeGreaterThan(at);
    const failed = events.at(-1);
    if (failed?.type !== 'failed') throw new Error(`expected a failed event, got ${JSON.stringify(failed)}`);
    expect(failed.step).toBe(at);
    expect(failed.message).toMatch(new RegExp(`^loss became NaN at step ${at} \\(epoch ${at > 6 ? 2 : 1}\\)`));
    expect(checkpointsOf(outDir)).toEqual(kept);
    expect(failed.lastCheckpoint === null ? null : path.basename(failed.lastCheckpoint)).toBe(kept.at(-1) ?? null);
    expect(events.filter((e) => e.type === 'checkpoint').map((e) => e.step)).toEqual(kept.length ? [6] : []);
    const stepEvents = events.flatMap((e) => (e.type === 'progress' ? [e.step] : []));
    expect(stepEvents).toEqual(Array.from({ length: at - 1 }, (_, i) => i + 1));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a cancel reads the pending steps first; the run resumes from its checkpoint and ends as an uncancelled one does', async () => {
    const outDir = tmp();
    const controller = new AbortController();
    onPretrainStep.call = (count) => {
      if (count === 7) controller.abort();
    };
    const { events, emit } = collectEvents();
    await expect(RUNS.pretrain(4, { outDir, emit, signal: controller.signal })).rejects.toBeInstanceOf(
      RunCancelledError,
    );
    // Step 7 ran before the cancel was seen, and its metrics were read and emitted before the run stopped.
    expect(events.flatMap((e) => (e.type === 'progress' ? [e.step] : []))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.at(-1)).toMatchObject({ type: 'log', message: expect.stringMatching(/^Cancelled at step 7;/) });
    expect(checkpointsOf(outDir)).toEqual(['epoch-0001']);

    onPretrainStep.call = () => undefined;
    const resumed = collectEvents();
    await RUNS.pretrain(4, { outDir, emit: resumed.emit, resume: true });
    expect(resumed.events[0]).toMatchObject({ type: 'started', step: 6, epoch: 1 });
    const whole = collectEvents();
    const wholeDir = tmp();
    await RUNS.pretrain(1, { outDir: wholeDir, emit: whole.emit });
    const lastEpoch = (list: RunEvent[], dir: string) =>
      comparable(list, dir).filter(
        (e) => (e as { step?: number }).step !== undefined && (e as { step: number }).step > 6,
      );
    expect(lastEpoch(resumed.events, outDir)).toEqual(lastEpoch(whole.events, wholeDir));
  });

  it.each(KINDS)('%s: a step reads no tensor; the metrics are read once per 4 steps', async (kind) => {
    const { events, emit } = collectEvents();
    const counted = await countStepReads(() => RUNS[kind](4, { outDir: tmp(), emit }), spyTensorReads);
    expect(events.at(-1)?.type).toBe('done');
    expect(counted.readsInStep).toEqual(new Array(12).fill(0));
    // Per epoch of 6 steps: after step 4 and at the epoch's end.
    expect(counted.metricReads).toBe(4);
  });

  it("no fine-tuning method's step reads a tensor, APGD-AT's included (its attack's bookkeeping stays in tensors)", async () => {
    const reads: Record<string, number> = {};
    const methods = [
      ...FINETUNE_METHODS.map((method) => ({ method })),
      { method: 'dbat', dbat: { attack: 'targeted-ll' } },
    ];
    for (const settings of methods) {
      const { events, emit } = collectEvents();
      const config = {
        source: { kind: 'scratch', model: 'micro' },
        ...DATA,
        epochs: 1,
        attack: { steps: 1 },
        // 2 iterations: the attack checks its step size (AutoAttack's checkpoints) after each.
        apgdAt: { steps: 2 },
        heldOut: { size: 0 },
        metricsEvery: 8,
        ...settings,
      };
      const counted = await countStepReads(() => runFinetuning(config, { outDir: tmp(), emit }), spyTensorReads);
      expect(events.at(-1)?.type).toBe('done');
      expect(counted.readsInStep).toHaveLength(6);
      reads[JSON.stringify(settings)] = counted.readsInStep.reduce((a, b) => a + b, 0);
    }
    console.log('reads inside the 6 steps of each method:', reads);
    expect(Object.keys(reads).some((settings) => settings.includes('apgd-at'))).toBe(true);
    for (const [settings, count] of Object.entries(reads)) expect(count, settings).toBe(0);
  });
});
