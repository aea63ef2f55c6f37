import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { events, runAndKillAfterCheckpoint, runMimir } from '../helpers/cli';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * `mimir finetune --engine torch` with the methods the golden steps check one step of (DBAT, APGD-AT,
 * Generalist): each trains a micro classifier to done with the workbench's events and checkpoints
 * (DBAT's head with 2C outputs, Generalist's learner state beside its checkpoints), and a SIGKILLed
 * Generalist run resumes (learners, their EMAs and optimiser from generalist-state/) to the same
 * final weights as an uninterrupted one.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-torch-methods-'));
/** One thread: the same arithmetic in every run of a test, whatever the machine's load. */
const THREADS = { OMP_NUM_THREADS: '1' };

function args(dir: string, method: string, settings: object = {}): string[] {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(
    file,
    JSON.stringify({
      checkpointEvery: 1,
      attack: { steps: 2 },
      apgdAt: { steps: 3 },
      heldOut: { size: 8, pgdSteps: 2 },
      headInitStd: 0.02,
      ...settings,
    }),
  );
  return [
    'finetune',
    '--engine',
    'torch',
    '--scratch',
    '--model',
    'micro',
    '--method',
    method,
    '--dataset-size',
    '32',
    '--image-size',
    '16',
    '--batch',
    '8',
    '--epochs',
    '2',
    '--config',
    file,
    '--out',
    dir,
    '--json',
  ];
}

const weights = (dir: string) =>
  decodeSafetensors(readFileSync(path.join(dir, 'checkpoints', 'epoch-0002', 'model.safetensors'))).tensors;

describe('mimir finetune --engine torch with dbat, apgd-at and generalist', () => {
  const found = findPythonWithTorch();
  if (!found.python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }

  for (const method of ['dbat', 'apgd-at'] as const) {
    it(`${method} trains to done with its epoch metrics and checkpoints`, () => {
      const dir = tmp();
      const run = runMimir(args(dir, method), THREADS);
      expect(run.status, run.stderr).toBe(0);
      const list = events(run.stdout);
      expect(list[0]).toMatchObject({ type: 'started', runKind: 'finetune', backend: 'torch', totalSteps: 8 });
      const epochs = list.filter((e) => e.type === 'metrics' && e.values.train_loss !== undefined);
      expect(epochs).toHaveLength(2);
      for (const e of epochs) {
        if (e.type !== 'metrics') continue;
        for (const key of [
          'train_loss',
          'train_clean_acc',
          'train_adv_acc',
          'heldout_natural_acc',
          'heldout_pgd_acc',
        ]) {
          expect(e.values[key], key).toBeTypeOf('number');
          expect(Number.isFinite(e.values[key]), key).toBe(true);
        }
      }
      expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 2, step: 8 });
      // DBAT's head ([width, outputs]): a dummy output per class (the built-in set has 10 classes).
      const head = weights(dir).get('head.weight');
      expect(head?.shape.at(-1)).toBe(method === 'dbat' ? 20 : 10);
    }, 600_000);
  }

  it('generalist reports both learners, keeps their state beside its checkpoints, and a SIGKILLed run resumes exactly', async () => {
    // A sync epoch (the 2nd) and a robust weight below 1 from the start: every part of the update runs.
    const settings = { generalist: { robustWeightStart: 0.7, syncStart: 0.5, syncEvery: 2 } };
    const whole = tmp();
    const a = runMimir(args(whole, 'generalist', settings), THREADS);
    expect(a.status, a.stderr).toBe(0);
    const list = events(a.stdout);
    const steps = list.filter((e) => e.type === 'metrics' && e.values.natural_loss !== undefined);
    expect(steps.length).toBeGreaterThan(0);
    // The robust weight at fractional epoch t of 2: 0.7 until the ramp (2/3 of the run), then linear to 0.4 at t = 2.
    const rampStart = (2 / 3) * 2;
    const expected = (t: number) => (t <= rampStart ? 0.7 : 0.7 + ((0.4 - 0.7) * (t - rampStart)) / (2 - rampStart));
    for (const e of steps) {
      if (e.type !== 'metrics') continue;
      expect(e.values.robust_weight, `epoch ${e.epoch}`).toBeCloseTo(expected(e.epoch), 12);
      expect(Number.isFinite(e.values.loss)).toBe(true);
    }
    expect(
      steps.some((e) => e.type === 'metrics' && e.values.robust_weight !== undefined && e.values.robust_weight < 0.7),
    ).toBe(true);
    expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 2, step: 8 });
    // One learner-state checkpoint per kept checkpoint (the others pruned with theirs), same names.
    const kept = (dir: string) =>
      readdirSync(dir)
        .filter((e) => e.startsWith('epoch-'))
        .sort();
    expect(kept(path.join(whole, 'generalist-state'))).toEqual(kept(path.join(whole, 'checkpoints')));
    expect(kept(path.join(whole, 'checkpoints'))).toContain('epoch-0002');
    const state = decodeSafetensors(
      readFileSync(path.join(whole, 'generalist-state', 'epoch-0002', 'model.safetensors')),
    ).tensors;
    const global = weights(whole);
    // After the sync epoch's last step both learners hold the global weights.
    for (const [name, t] of global) {
      expect(Array.from(state.get(`natural.${name}`)?.data ?? []), name).toEqual(Array.from(t.data));
      expect(Array.from(state.get(`robust.${name}`)?.data ?? []), name).toEqual(Array.from(t.data));
      expect(state.has(`robust_ema.${name}`) && state.has(`natural_ema.${name}`), name).toBe(true);
    }

    const killed = tmp();
    process.env.OMP_NUM_THREADS = '1';
    try {
      await runAndKillAfterCheckpoint(args(killed, 'generalist', settings), 1);
    } finally {
      delete process.env.OMP_NUM_THREADS;
    }
    const resumed = runMimir(['finetune', '--engine', 'torch', '--resume', killed, '--json'], THREADS);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(events(resumed.stdout)[0]).toMatchObject({ type: 'started', step: 4, epoch: 1 });
    const [x, y] = [global, weights(killed)];
    for (const [name, t] of x) expect(Array.from(y.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
  }, 900_000);
});
