import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { RunEvent } from '../../src/shared/run-events';
import { events, pgdAtFinetuneArgs, runAndKillAfterCheckpoint, runEvents, runMimir } from '../helpers/cli';
import { ROOT } from '../helpers/build';
import { findPythonWithTorch } from '../engine/io/python-torch';
import { relativeNorm } from './golden';

/**
 * `mimir pretrain|finetune --engine torch`: the PyTorch engine behind the same commands, events (validated with
 * the RunEvent schema), checkpoints and resume; its checkpoint fine-tunes and is evaluated on the tfjs
 * engine; --nproc 2 averages the same gradients as one process; two "machines" train to done.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-cli-torch-'));
const configFile = (dir: string, config: object): string => {
  const file = path.join(dir, 'config.input.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
};
const MICRO = ['--model', 'micro', '--image-size', '16', '--dataset-size', '32', '--batch', '8'];
const SETTINGS = {
  checkpointEvery: 1,
  keepCheckpoints: 5,
  previewCount: 4,
  optimizer: { warmupEpochs: 1, baseLr: 2e-3 },
};
/** One thread per rank: the same arithmetic in every run of a test, whatever the machine's load. */
const THREADS = { OMP_NUM_THREADS: '1' };

describe('mimir pretrain and finetune --engine torch', () => {
  const found = findPythonWithTorch();
  if (!found.python) {
    it('says why the PyTorch engine is unavailable and how to install it', () => {
      const result = runMimir(['pretrain', '--engine', 'torch', ...MICRO, '--out', tmp()]);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/PyTorch engine is unavailable.*install PyTorch/s);
    });
    return;
  }

  it('runs MIMIR to done with valid events; its checkpoint fine-tunes with PGD-AT and is evaluated on the tfjs engine', () => {
    const dir = tmp();
    const list = runEvents(
      [
        'pretrain',
        '--engine',
        'torch',
        ...MICRO,
        '--mode',
        'mimir',
        '--epochs',
        '2',
        '--config',
        configFile(dir, SETTINGS),
        '--out',
        dir,
        '--json',
      ],
      THREADS,
    );
    expect(list[0]).toMatchObject({ type: 'started', runKind: 'pretrain', backend: 'torch', step: 0, totalSteps: 8 });
    expect(list[0]?.type === 'started' && list[0].engine).toMatchObject({ name: 'torch', device: 'cpu', worldSize: 1 });
    const metrics = list.filter((e) => e.type === 'metrics' && e.values.mi !== undefined);
    expect(metrics).toHaveLength(8);
    const previews = list.filter((e) => e.type === 'preview');
    expect(previews.length).toBe(3);
    const last = previews.at(-1);
    if (last?.type !== 'preview') throw new Error('no preview');
    expect(Object.keys(last.files).sort()).toEqual([
      'adversarial',
      'clean',
      'masked',
      'perturbation',
      'reconstruction',
    ]);
    expect(
      readFileSync(last.files.clean ?? '')
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    const done = list.at(-1);
    expect(done).toMatchObject({ type: 'done', epoch: 2, step: 8, output: { kind: 'checkpoint' } });
    if (done?.type !== 'done') throw new Error('not done');

    const finetuned = tmp();
    const ftDone = runEvents(
      pgdAtFinetuneArgs(
        done.output?.path ?? '',
        configFile(finetuned, { attack: { steps: 2 }, heldOut: { size: 0 } }),
        finetuned,
      ),
    ).at(-1);
    expect(ftDone).toMatchObject({ type: 'done', epoch: 1 });
    if (ftDone?.type !== 'done') throw new Error('fine-tuning did not finish');
    const ev = runMimir([
      'eval',
      '--model',
      ftDone.output?.path ?? '',
      '--attacks',
      'natural,pgd:3',
      '--n',
      '8',
      '--out',
      tmp(),
      '--json',
    ]);
    expect(ev.status, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout.trim().split('\n').at(-1) ?? '{}') as { format?: string };
    expect(report.format).toBe('mimir-evaluation');
  }, 600_000);

  it('resumes a SIGKILLed run from its checkpoint and ends exactly where an uninterrupted run ends', async () => {
    const args = (dir: string) => [
      'pretrain',
      '--engine',
      'torch',
      ...MICRO,
      '--mode',
      'adv-mae',
      '--epochs',
      '3',
      '--config',
      configFile(dir, SETTINGS),
      '--out',
      dir,
      '--json',
    ];
    const whole = tmp();
    const uninterrupted = runEvents(args(whole), THREADS);
    expect(uninterrupted.at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });

    const killed = tmp();
    process.env.OMP_NUM_THREADS = '1';
    let before: RunEvent[];
    try {
      before = await runAndKillAfterCheckpoint(args(killed), 2);
    } finally {
      delete process.env.OMP_NUM_THREADS;
    }
    expect(before.some((e) => e.type === 'done')).toBe(false);
    const after = runEvents(['pretrain', '--engine', 'torch', '--resume', killed, '--json'], THREADS);
    expect(after[0]).toMatchObject({
      type: 'started',
      backend: 'torch',
      step: 8,
      epoch: 2,
      resumedFrom: path.join(killed, 'checkpoints', 'epoch-0002'),
    });
    expect(after.at(-1)).toMatchObject({ type: 'done', epoch: 3, step: 12 });
    const lastSteps = (list: RunEvent[]) =>
      list.flatMap((e) => {
        if (e.type !== 'metrics' || e.step <= 8 || e.values.loss === undefined) return [];
        const { images_per_s: _timing, ...values } = e.values;
        return [{ step: e.step, values }];
      });
    expect(lastSteps(after)).toEqual(lastSteps(uninterrupted));
    const weights = (dir: string) =>
      decodeSafetensors(readFileSync(path.join(dir, 'checkpoints', 'epoch-0003', 'model.safetensors'))).tensors;
    const [x, y] = [weights(whole), weights(killed)];
    for (const [name, t] of x) expect(Array.from(y.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
  }, 600_000);

  it('--nproc 2 (gloo): DistributedDataParallel averages the same MAE gradients as one process on the batch of 8 (1e-5)', () => {
    const dumps = [tmp(), tmp()].map((d) => path.join(d, 'grads.safetensors'));
    for (const [i, nproc] of ['1', '2'].entries()) {
      const dir = tmp();
      const run = runMimir(
        [
          'pretrain',
          '--engine',
          'torch',
          '--nproc',
          nproc,
          ...MICRO,
          '--mode',
          'mae',
          '--epochs',
          '1',
          '--out',
          dir,
          '--json',
        ],
        { ...THREADS, MIMIR_TORCH_DUMP_GRADS: dumps[i] ?? '' },
      );
      // The hook stops the run after the first step's gradients: a cancel.
      expect(run.status, run.stderr).toBe(130);
    }
    const [single, ddp] = dumps.map((file) => decodeSafetensors(readFileSync(file)));
    // Who averaged: the rank's GradientAverager names the class of the module that ran the all-reduce.
    expect(single?.metadata.averagedBy).toBe('one process');
    expect(ddp?.metadata.averagedBy).toBe(
      'torch.nn.parallel.distributed.DistributedDataParallel over gloo (2 processes)',
    );
    const [one, two] = [single?.tensors, ddp?.tensors];
    let worst = 0;
    for (const [name, g] of one ?? new Map()) {
      const other = two?.get(name);
      expect(other, name).toBeDefined();
      worst = Math.max(worst, relativeNorm(other?.data ?? [], g.data));
    }
    console.log(`[ddp] worst per-tensor relative gradient difference, 2 processes vs 1: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
    expect(one?.size).toBe(two?.size);
  }, 300_000);

  it('two "machines" (--nnodes 2, master 127.0.0.1) train a micro MIMIR run to done; only node 0 reports events', async () => {
    const dir = tmp();
    const port = String(20000 + Math.floor(Math.random() * 20000));
    const node = (rank: number) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            path.join(ROOT, 'bin/mimir.mjs'),
            'pretrain',
            '--engine',
            'torch',
            '--nnodes',
            '2',
            '--node-rank',
            String(rank),
            '--master-addr',
            '127.0.0.1',
            '--master-port',
            port,
            ...MICRO,
            '--mode',
            'mimir',
            '--epochs',
            '1',
            '--out',
            path.join(dir, `node${rank}`),
            '--json',
          ],
          { env: { ...process.env, ...THREADS }, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const [zero, one] = await Promise.all([node(0), node(1)]);
    expect(zero.code, zero.stderr).toBe(0);
    expect(one.code, one.stderr).toBe(0);
    const list = events(zero.stdout);
    expect(list[0]?.type === 'started' && list[0].engine?.worldSize).toBe(2);
    expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 1, step: 4 });
    expect(one.stdout.trim()).toBe('');
  }, 300_000);

  it('fine-tunes a tfjs pre-training with PGD-AT on the torch engine; a SIGKILLed fine-tuning resumes exactly', async () => {
    const pre = tmp();
    const tfjs = runMimir(['pretrain', ...MICRO, '--mode', 'mae', '--epochs', '1', '--out', pre, '--json']);
    expect(tfjs.status, tfjs.stderr).toBe(0);
    const settings = { checkpointEvery: 1, attack: { steps: 2 }, heldOut: { size: 8, pgdSteps: 2 } };
    const args = (dir: string) =>
      pgdAtFinetuneArgs(pre, configFile(dir, settings), dir, { epochs: 2, engine: 'torch' });
    const whole = tmp();
    const list = runEvents(args(whole), THREADS);
    expect(list[0]).toMatchObject({ type: 'started', runKind: 'finetune', backend: 'torch', totalSteps: 8 });
    const epochMetrics = list.filter((e) => e.type === 'metrics' && e.values.train_loss !== undefined);
    expect(epochMetrics).toHaveLength(2);
    for (const e of epochMetrics) {
      if (e.type !== 'metrics') continue;
      expect(Object.keys(e.values).sort()).toEqual(
        ['heldout_natural_acc', 'heldout_pgd_acc', 'train_adv_acc', 'train_clean_acc', 'train_loss'].sort(),
      );
    }
    expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 2, step: 8 });

    const killed = tmp();
    process.env.OMP_NUM_THREADS = '1';
    try {
      await runAndKillAfterCheckpoint(args(killed), 1);
    } finally {
      delete process.env.OMP_NUM_THREADS;
    }
    const resumed = runEvents(['finetune', '--engine', 'torch', '--resume', killed, '--json'], THREADS);
    expect(resumed[0]).toMatchObject({ type: 'started', step: 4, epoch: 1 });
    const weights = (dir: string) =>
      decodeSafetensors(readFileSync(path.join(dir, 'checkpoints', 'epoch-0002', 'model.safetensors'))).tensors;
    const [x, y] = [weights(whole), weights(killed)];
    for (const [name, t] of x) expect(Array.from(y.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
  }, 900_000);

  it('refuses torch-only flags without --engine torch, and --backend with it', () => {
    const refused = runMimir(['pretrain', '--nproc', '2', ...MICRO, '--out', tmp()]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/--nproc is for the PyTorch engine: add --engine torch/);
    const backend = runMimir(['pretrain', '--engine', 'torch', '--backend', 'cpu', ...MICRO, '--out', tmp()]);
    expect(backend.status).toBe(1);
    expect(backend.stderr).toMatch(/--backend chooses a TensorFlow.js backend/);
  });

  it("runs on the config file's engine when --engine is not given, and --engine overrides it", () => {
    const dir = tmp();
    const config = path.join(dir, 'torch-run.json');
    writeFileSync(config, JSON.stringify({ engine: { name: 'torch', nproc: 1 } }));
    // The PyTorch engine is chosen: it refuses --backend, and asks for a Python with torch.
    const backend = runMimir(['pretrain', '--config', config, '--backend', 'cpu', ...MICRO, '--out', tmp()]);
    expect(backend.status).toBe(1);
    expect(backend.stderr).toMatch(/--backend chooses a TensorFlow.js backend/);
    const noTorch = runMimir(['pretrain', '--config', config, ...MICRO, '--out', tmp()], {
      MIMIR_PYTHON: '/nonexistent/python3',
    });
    expect(noTorch.status).toBe(1);
    expect(noTorch.stderr).toMatch(/PyTorch engine is unavailable/);
    // --engine tfjs wins over the config's engine: --nproc is then refused as a PyTorch flag.
    const tfjs = runMimir([
      'pretrain',
      '--config',
      config,
      '--engine',
      'tfjs',
      '--nproc',
      '2',
      ...MICRO,
      '--out',
      tmp(),
    ]);
    expect(tfjs.status).toBe(1);
    expect(tfjs.stderr).toMatch(/--nproc is for the PyTorch engine/);
  });

  it('says why the PyTorch engine is unavailable and how to install it when MIMIR_PYTHON has no torch', () => {
    const result = runMimir(['pretrain', '--engine', 'torch', ...MICRO, '--out', tmp()], {
      MIMIR_PYTHON: '/nonexistent/python3',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/PyTorch engine is unavailable.*\/nonexistent\/python3.*install PyTorch/s);
  });
});
