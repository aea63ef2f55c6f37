import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { runFinetuning } from '../../../src/engine/finetune';
import { runPretraining } from '../../../src/engine/pretrain/trainer';
import { RunCancelledError, type TrainingRunOptions } from '../../../src/engine/train/run-lifecycle';
import type { RunEvent } from '../../../src/shared/run-events';
import { useBackend } from '../../helpers/backend';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-lifecycle-'));

const TRAINERS = {
  pretrain: (options: TrainingRunOptions, engine?: object) =>
    runPretraining(
      {
        ...(engine ? { engine } : {}),
        mode: 'mae',
        model: 'micro',
        dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        epochs: 1,
        batchSize: 16,
      },
      options,
    ),
  finetune: (options: TrainingRunOptions, engine?: object) =>
    runFinetuning(
      {
        ...(engine ? { engine } : {}),
        method: 'natural',
        source: { kind: 'scratch', model: 'micro' },
        dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        epochs: 1,
        batchSize: 16,
        heldOut: { size: 0 },
      },
      options,
    ),
};

describe('the training lifecycle shared by pre-training and fine-tuning (wasm)', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each(Object.keys(TRAINERS) as Array<keyof typeof TRAINERS>)(
    '%s: an error raised while the run is being cancelled ends it as a cancel (no failed event), freeing its tensors',
    async (kind) => {
      const before = tf.memory().numTensors;
      const controller = new AbortController();
      const events: RunEvent[] = [];
      let thrown = false;
      const emit = (event: RunEvent): void => {
        events.push(event);
        // Ctrl-C arrives while the first step's metrics are being written, and the write fails with it.
        if (!thrown && event.type === 'metrics' && event.step === 1) {
          thrown = true;
          controller.abort();
          throw new Error('the event sink closed');
        }
      };
      await expect(TRAINERS[kind]({ outDir: tmp(), emit, signal: controller.signal })).rejects.toBeInstanceOf(
        RunCancelledError,
      );
      expect(thrown).toBe(true);
      expect(events.filter((e) => e.type === 'failed')).toEqual([]);
      expect(events.at(-1)).toMatchObject({
        type: 'log',
        level: 'warn',
        message: expect.stringMatching(/^Cancelled at step 1;/),
      });
      expect(tf.memory().numTensors).toBe(before);
    },
    120_000,
  );

  it.each(Object.keys(TRAINERS) as Array<keyof typeof TRAINERS>)(
    '%s: an aborted signal before the first step cancels it at step 0',
    async (kind) => {
      const controller = new AbortController();
      controller.abort();
      const events: RunEvent[] = [];
      await expect(
        TRAINERS[kind]({ outDir: tmp(), emit: (e) => events.push(e), signal: controller.signal }),
      ).rejects.toBeInstanceOf(RunCancelledError);
      expect(events.some((e) => e.type === 'metrics')).toBe(false);
      expect(events.at(-1)).toMatchObject({ type: 'log', message: expect.stringMatching(/^Cancelled at step 0;/) });
    },
    120_000,
  );

  it.each(Object.keys(TRAINERS) as Array<keyof typeof TRAINERS>)(
    '%s: precision fp16 (the webgpu GEMM) is refused on wasm before anything is written, saying what to change',
    async (kind) => {
      const outDir = path.join(tmp(), 'run');
      const events: RunEvent[] = [];
      await expect(
        TRAINERS[kind]({ outDir, emit: (e) => events.push(e) }, { name: 'tfjs', precision: 'fp16' }),
      ).rejects.toThrow(/precision fp16 applies to the webgpu backend only, and wasm was chosen/);
      expect(events).toEqual([
        expect.objectContaining({
          type: 'failed',
          cause: 'config',
          message: expect.stringMatching(/or precision fp32$/),
        }),
      ]);
      expect(existsSync(outDir)).toBe(false);
    },
    120_000,
  );
});
