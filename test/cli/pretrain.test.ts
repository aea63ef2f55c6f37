import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/shared/run-events';
import { events, runAndKillAfterCheckpoint, runMimir } from '../helpers/cli';

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-pretrain-'));
const configFile = (dir: string, config: object): string => {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
};
const MICRO = ['--model', 'micro', '--image-size', '16', '--dataset-size', '128', '--batch', '32'];
const SETTINGS = { checkpointEvery: 1, keepCheckpoints: 5, optimizer: { warmupEpochs: 1, baseLr: 2e-3 } };

describe('mimir pretrain', () => {
  it('resumes a killed run from its checkpoint and ends exactly where an uninterrupted run ends', async () => {
    const whole = tmp();
    const a = runMimir([
      'pretrain',
      ...MICRO,
      '--epochs',
      '3',
      '--config',
      configFile(whole, SETTINGS),
      '--out',
      whole,
      '--json',
    ]);
    expect(a.status, a.stderr).toBe(0);
    const aDone = events(a.stdout).at(-1);
    expect(aDone).toMatchObject({ type: 'done', epoch: 3, step: 12 });

    const killed = tmp();
    const before = await runAndKillAfterCheckpoint(
      ['pretrain', ...MICRO, '--epochs', '3', '--config', configFile(killed, SETTINGS), '--out', killed, '--json'],
      2,
    );
    expect(before.some((e) => e.type === 'done')).toBe(false);

    const resumed = runMimir(['pretrain', '--resume', killed, '--json']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const after = events(resumed.stdout);
    expect(after[0]).toMatchObject({
      type: 'started',
      step: 8,
      epoch: 2,
      resumedFrom: path.join(killed, 'checkpoints', 'epoch-0002'),
    });
    expect(after.at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });

    // Same backend, same seed: the resumed run's last steps and final weights equal the uninterrupted run's.
    const lastSteps = (list: RunEvent[]) =>
      list.flatMap((e) => {
        if (e.type !== 'metrics' || e.step <= 8 || e.values.loss === undefined) return [];
        const { images_per_s: _timing, ...values } = e.values;
        return [{ step: e.step, values }];
      });
    expect(lastSteps(after)).toEqual(lastSteps(events(a.stdout)));
    const weights = (dir: string) => readFileSync(path.join(dir, 'checkpoints', 'epoch-0003', 'model.safetensors'));
    expect(weights(killed).equals(weights(whole))).toBe(true);
  });

  it('refuses to start over in a folder that holds a run unless --overwrite, which replaces it whole', () => {
    const dir = tmp();
    const args = ['pretrain', ...MICRO, '--epochs', '1', '--config', configFile(dir, SETTINGS), '--out', dir];
    const first = runMimir([...args, '--seed', '1', '--json']);
    expect(first.status, first.stderr).toBe(0);
    const checkpoint = path.join(dir, 'checkpoints', 'epoch-0001', 'model.safetensors');
    const weights = readFileSync(checkpoint);
    const config = readFileSync(path.join(dir, 'config.json'), 'utf8');

    const again = runMimir([...args, '--seed', '2']);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(
      `mimir: ${dir} already holds a run (config.json, checkpoints/). To continue it: mimir pretrain --resume ${dir}; to start over in it, deleting its checkpoints, previews and config.json: add --overwrite.`,
    );
    const json = runMimir([...args, '--seed', '2', '--json']);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ type: 'failed', message: expect.stringContaining('--overwrite') });
    expect(readFileSync(checkpoint).equals(weights)).toBe(true);
    expect(readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe(config);
    expect(runMimir(['pretrain', '--resume', dir, '--overwrite']).stderr).toMatch(/does not go with --resume/);

    const over = runMimir([...args, '--seed', '2', '--overwrite', '--json']);
    expect(over.status, over.stderr).toBe(0);
    expect(events(over.stdout)[0]).toMatchObject({ type: 'started', step: 0, resumedFrom: null });
    expect(readFileSync(checkpoint).equals(weights)).toBe(false);
    expect(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'))).toMatchObject({ seed: 2 });
  });

  it('stops on a diverging loss with a message, keeping the last good checkpoint', () => {
    const dir = tmp();
    const result = runMimir([
      'pretrain',
      ...MICRO,
      '--epochs',
      '6',
      '--config',
      configFile(dir, { ...SETTINGS, optimizer: { warmupEpochs: 0, baseLr: 1e9 } }),
      '--out',
      dir,
      '--json',
    ]);
    expect(result.status).toBe(1);
    const failed = events(result.stdout).at(-1);
    if (failed?.type !== 'failed') throw new Error(`expected a failed event, got ${JSON.stringify(failed)}`);
    expect(failed.message).toMatch(
      /became (NaN|Infinity|-Infinity) at step \d+ \(epoch \d+\); training stopped\. Lower the learning rate/,
    );
    if (failed.lastCheckpoint !== null)
      expect(existsSync(path.join(failed.lastCheckpoint, 'model.safetensors'))).toBe(true);
  });

  it('refuses an invalid config, saying which field', () => {
    const dir = tmp();
    const result = runMimir([
      'pretrain',
      ...MICRO,
      '--config',
      configFile(dir, { maskRatio: 1.5 }),
      '--out',
      dir,
      '--json',
    ]);
    expect(result.status).toBe(1);
    expect(events(result.stdout).at(-1)).toMatchObject({
      type: 'failed',
      message: expect.stringContaining('maskRatio'),
    });
    const missing = runMimir(['pretrain', '--resume', path.join(dir, 'nothing-here')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/Nothing to resume in .*nothing-here: it holds no checkpoint/);
  });

  it('with --json, a dataset or config error is a failed event naming the problem', () => {
    const dir = tmp();
    // The default batch of 512 does not fit 128 images: refused before training, as a failed event.
    const batch = runMimir(['pretrain', '--dataset-size', '128', '--out', dir, '--json']);
    expect(batch.status).toBe(1);
    expect(events(batch.stdout)).toEqual([
      expect.objectContaining({
        type: 'failed',
        message: 'The train set has 128 images, fewer than one batch of 512.',
        lastCheckpoint: null,
      }),
    ]);
    // A misspelt key is an error naming it, not a run at the default batch size.
    const misspelt = configFile(dir, { batchsize: 32, epochs: 1 });
    const json = runMimir(['pretrain', ...MICRO.slice(0, 6), '--config', misspelt, '--out', dir, '--json']);
    expect(json.status).toBe(1);
    expect(events(json.stdout)).toEqual([
      expect.objectContaining({
        type: 'failed',
        message: 'Invalid pre-training config: (config): unknown key "batchsize" (did you mean "batchSize"?)',
      }),
    ]);
    const human = runMimir(['pretrain', ...MICRO.slice(0, 6), '--config', misspelt, '--out', dir]);
    expect(human.status).toBe(1);
    expect(human.stderr).toContain('unknown key "batchsize" (did you mean "batchSize"?)');
    expect(existsSync(path.join(dir, 'checkpoints'))).toBe(false);
  });

  it('--resume DIR/checkpoints/epoch-K continues from that checkpoint, not the newest', () => {
    const dir = tmp();
    const first = runMimir([
      'pretrain',
      ...MICRO,
      '--epochs',
      '3',
      '--config',
      configFile(dir, SETTINGS),
      '--out',
      dir,
      '--json',
    ]);
    expect(first.status, first.stderr).toBe(0);
    const weights = () => readFileSync(path.join(dir, 'checkpoints', 'epoch-0003', 'model.safetensors'));
    const uninterrupted = weights();

    const chosen = path.join(dir, 'checkpoints', 'epoch-0001');
    const resumed = runMimir(['pretrain', '--resume', chosen, '--json']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const after = events(resumed.stdout);
    expect(after[0]).toMatchObject({ type: 'started', step: 4, epoch: 1, outDir: dir, resumedFrom: chosen });
    expect(after.at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });
    // Epochs 2 and 3 trained again from epoch 1's state: the same weights as the first time.
    expect(weights().equals(uninterrupted)).toBe(true);

    const missing = runMimir(['pretrain', '--resume', path.join(dir, 'checkpoints', 'epoch-0009'), '--json']);
    expect(missing.status).toBe(1);
    expect(events(missing.stdout).at(-1)).toMatchObject({
      type: 'failed',
      message: expect.stringMatching(/epoch-0009.*cannot read checkpoint\.json/),
    });
  });

  it('says before training that biased HSIC at lambda 1e-5 leaves the penalty negligible: printed, and a log event with --json', () => {
    const hsic = { ...SETTINGS, mi: { estimator: 'hsic', lambda: 1e-5 } };
    const args = (dir: string) => [
      'pretrain',
      ...MICRO,
      '--dataset-size',
      '64',
      '--epochs',
      '1',
      '--config',
      configFile(dir, hsic),
      '--out',
      dir,
    ];
    const human = runMimir(args(tmp()));
    expect(human.status, human.stderr).toBe(0);
    const printed = `${human.stdout}${human.stderr}`;
    const warning = printed.indexOf('warn: The MI penalty is negligible: lambda * MI / recon = ');
    expect(warning).toBeGreaterThanOrEqual(0);
    expect(printed).toMatch(/use estimator nhsic .* or raise lambda/);
    const firstProgress = printed.search(/epoch 1\/1 \[/);
    if (firstProgress >= 0) expect(warning).toBeLessThan(firstProgress);

    const json = runMimir([...args(tmp()), '--json']);
    expect(json.status, json.stderr).toBe(0);
    const list = events(json.stdout);
    const logIndex = list.findIndex(
      (e) => e.type === 'log' && e.level === 'warn' && /MI penalty is negligible/.test(e.message),
    );
    expect(logIndex).toBeGreaterThanOrEqual(0);
    expect(logIndex).toBeLessThan(list.findIndex((e) => e.type === 'metrics'));
  });
});
