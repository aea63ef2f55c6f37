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
