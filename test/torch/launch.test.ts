import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { events, runMimir } from '../helpers/cli';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * `mimir launch --slurm` writes an sbatch script; run here with stand-ins for Slurm's srun (one task
 * per node, SLURM_NODEID 0 and 1, in parallel) and scontrol (the first host: 127.0.0.1), it trains a
 * micro run to done on two "machines", node 0 reporting the events.
 */
describe('mimir launch --slurm', () => {
  it('refuses flags it sets itself and commands other than pretrain/finetune', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-launch-'));
    const own = runMimir(['launch', '--slurm', '--output', path.join(dir, 'a'), '--', 'pretrain', '--nproc', '2']);
    expect(own.status).toBe(1);
    expect(own.stderr).toMatch(/--nproc: mimir launch sets the engine and the ranks itself/);
    const other = runMimir(['launch', '--slurm', '--output', path.join(dir, 'b'), '--', 'eval', '--model', 'x']);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/runs 'pretrain' or 'finetune'/);
  });

  const found = findPythonWithTorch();
  it.skipIf(!found.python)(
    'writes a script that trains on two nodes under (stand-ins for) srun and scontrol',
    () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-launch-'));
      const script = path.join(dir, 'job.sbatch');
      const out = path.join(dir, 'run out');
      const written = runMimir([
        'launch',
        '--slurm',
        '--nodes',
        '2',
        '--gpus-per-node',
        '0',
        '--output',
        script,
        '--',
        'pretrain',
        '--model',
        'micro',
        '--image-size',
        '16',
        '--dataset-size',
        '32',
        '--batch',
        '8',
        '--epochs',
        '1',
        '--device',
        'cpu',
        '--out',
        out,
        '--json',
      ]);
      expect(written.status, written.stderr).toBe(0);
      const text = readFileSync(script, 'utf8');
      expect(text).toMatch(/^#SBATCH --nodes=2$/m);
      expect(text).toMatch(/--node-rank "\$SLURM_NODEID"/);

      const bin = path.join(dir, 'bin');
      mkdirSync(bin);
      // A node list longer than a pipe's buffer, as on a large cluster: the script must read past line 1.
      writeFileSync(path.join(bin, 'scontrol'), '#!/bin/bash\necho 127.0.0.1\nyes 127.0.0.2 | head -n 100000\n');
      // srun's stand-in: the command once per node, in parallel, node 0's stdout kept apart.
      writeFileSync(
        path.join(bin, 'srun'),
        [
          '#!/bin/bash',
          'while [[ "$1" == --* ]]; do shift; done',
          `SLURM_NODEID=0 "$@" > ${JSON.stringify(path.join(dir, 'node0.out'))} &`,
          `SLURM_NODEID=1 "$@" > ${JSON.stringify(path.join(dir, 'node1.out'))} &`,
          'wait -n && wait -n',
          '',
        ].join('\n'),
      );
      chmodSync(path.join(bin, 'scontrol'), 0o755);
      chmodSync(path.join(bin, 'srun'), 0o755);
      const run = spawnSync('bash', [script], {
        encoding: 'utf8',
        timeout: 600_000,
        env: {
          ...process.env,
          PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
          SLURM_JOB_NODELIST: 'node[0-1]',
          MASTER_PORT: String(20000 + Math.floor(Math.random() * 20000)),
          OMP_NUM_THREADS: '1',
        },
      });
      expect(run.status, run.stderr).toBe(0);
      const list = events(readFileSync(path.join(dir, 'node0.out'), 'utf8'));
      expect(list[0]?.type === 'started' && list[0].engine?.worldSize).toBe(2);
      expect(list.at(-1)).toMatchObject({ type: 'done', epoch: 1, step: 4 });
      expect(readFileSync(path.join(dir, 'node1.out'), 'utf8').trim()).toBe('');
    },
    600_000,
  );
});
