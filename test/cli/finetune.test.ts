import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RunEvent } from '../../src/shared/run-events';
import { events, runAndKillAfterCheckpoint, runMimir } from '../helpers/cli';

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-finetune-'));
const configFile = (dir: string, config: object): string => {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
};
const MICRO = ['--scratch', '--model', 'micro', '--image-size', '16', '--dataset-size', '64', '--batch', '16'];
const SETTINGS = {
  checkpointEvery: 1,
  keepCheckpoints: 5,
  attack: { steps: 2 },
  heldOut: { size: 16, pgdSteps: 2 },
  optimizer: { warmupEpochs: 1 },
};

function failure(args: string[]): string {
  const result = runMimir(['finetune', ...args, '--json']);
  expect(result.status, result.stderr).toBe(1);
  // A run's failure is a full `failed` event; a refused command line only {type, message}.
  const last: unknown = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? 'null');
  const parsed = z.object({ type: z.literal('failed'), message: z.string() }).safeParse(last);
  if (!parsed.success) throw new Error(`expected a failed event, got ${result.stdout} ${result.stderr}`);
  return parsed.data.message;
}

describe('mimir finetune', () => {
  it('resumes a SIGKILLed PGD-AT run from its checkpoint and ends exactly where an uninterrupted run ends', async () => {
    const args = (dir: string) => [
      'finetune',
      ...MICRO,
      '--method',
      'pgd-at',
      '--epochs',
      '3',
      '--config',
      configFile(dir, SETTINGS),
      '--out',
      dir,
      '--json',
    ];
    const whole = tmp();
    const a = runMimir(args(whole));
    expect(a.status, a.stderr).toBe(0);
    expect(events(a.stdout).at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });

    const killed = tmp();
    const before = await runAndKillAfterCheckpoint(args(killed), 2);
    expect(before.some((e) => e.type === 'done')).toBe(false);

    const resumed = runMimir(['finetune', '--resume', killed, '--json']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const after = events(resumed.stdout);
    expect(after[0]).toMatchObject({
      type: 'started',
      runKind: 'finetune',
      step: 8,
      epoch: 2,
      resumedFrom: path.join(killed, 'checkpoints', 'epoch-0002'),
    });
    expect(after.at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });

    // Same backend, same seed: the resumed run's last steps and final weights equal the uninterrupted run's.
    const lastSteps = (list: RunEvent[]) =>
      list.flatMap((e) => {
        if (e.type !== 'metrics' || e.step <= 8) return [];
        const { images_per_s: _timing, ...values } = e.values;
        return [{ step: e.step, values }];
      });
    expect(lastSteps(after).length).toBeGreaterThan(4);
    expect(lastSteps(after)).toEqual(lastSteps(events(a.stdout)));
    const weights = (dir: string) => readFileSync(path.join(dir, 'checkpoints', 'epoch-0003', 'model.safetensors'));
    expect(weights(killed).equals(weights(whole))).toBe(true);
  });

  it('refuses bad input, saying what is wrong', () => {
    const dir = tmp();
    expect(failure(['--from', path.join(dir, 'no-such-run'), '--out', dir])).toMatch(
      /--from .*no-such-run: .*no such checkpoint or run folder/,
    );
    expect(failure(['--out', dir])).toMatch(/Give --from <pre-training checkpoint or run folder>.*or --scratch/);
    expect(failure(['--from', dir, '--scratch', '--out', dir])).toMatch(/not both/);
    expect(failure(['--from', dir, '--model', 'micro', '--out', dir])).toMatch(/--model goes with --scratch/);
    expect(
      failure([...MICRO, '--config', configFile(dir, { dropPath: 2, method: 'pgd-at' }), '--out', path.join(dir, 'r')]),
    ).toMatch(/Invalid fine-tuning config: dropPath: dropPath must be < 1/);
    expect(failure([...MICRO, '--method', 'adversarial', '--out', path.join(dir, 'r2')])).toMatch(
      /method: method must be one of 'natural', 'pgd-at'/,
    );

    // A fine-tuning run's output given as --from.
    const finetuned = tmp();
    const ok = runMimir([
      'finetune',
      ...MICRO,
      '--method',
      'natural',
      '--epochs',
      '1',
      '--config',
      configFile(finetuned, { heldOut: { size: 0 } }),
      '--out',
      finetuned,
      '--json',
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(failure(['--from', finetuned, '--out', path.join(dir, 'r3')])).toMatch(
      /is a fine-tuning checkpoint \(it already has a classifier head\).*mimir finetune --resume/,
    );
    const nothing = runMimir(['finetune', '--resume', path.join(dir, 'nothing-here')]);
    expect(nothing.status).toBe(1);
    expect(nothing.stderr).toMatch(/Nothing to resume in .*nothing-here: it holds no checkpoint/);
  });

  it('refuses an --out folder that holds a run, keeping its files', () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'config.json'), '{"a": "run"}\n');
    expect(failure([...MICRO, '--out', dir])).toBe(
      `${dir} already holds a run (config.json). To continue it: mimir finetune --resume ${dir}; to start over in it, deleting its checkpoints, previews and config.json: add --overwrite.`,
    );
    expect(readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe('{"a": "run"}\n');
  });

  it('refuses a one-class folder and an image size the patch grid does not divide, before training', async () => {
    const dir = tmp();
    const folder = path.join(dir, 'one-class');
    mkdirSync(path.join(folder, 'cats'), { recursive: true });
    for (let i = 0; i < 4; i++) {
      await sharp(Buffer.alloc(16 * 16 * 3, 40 * i), { raw: { width: 16, height: 16, channels: 3 } })
        .png()
        .toFile(path.join(folder, 'cats', `${i}.png`));
    }
    const out = path.join(dir, 'r');
    expect(failure(['--scratch', '--model', 'micro', '--dataset', folder, '--image-size', '16', '--out', out])).toMatch(
      /has 1 class \("cats"\); a classifier needs at least 2/,
    );
    expect(
      failure(['--scratch', '--model', 'micro', '--image-size', '30', '--dataset-size', '64', '--out', out]),
    ).toMatch(/Model micro does not fit the dataset's 30 px images \(30 px images do not split into a 4 x 4 grid/);
    expect(existsSync(path.join(out, 'checkpoints'))).toBe(false);
  });
});
