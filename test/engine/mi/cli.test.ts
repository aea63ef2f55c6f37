import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../../src/engine/io/npy';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import { Rng } from '../../../src/engine/rng';
import { MI_ESTIMATORS } from '../../../src/shared/mi-config';
import { useBackend } from '../../helpers/backend';

// Runs the built command line (out/main/cli.js, made by `npx electron-vite build`); builds nothing itself.
const root = path.resolve(import.meta.dirname, '../../..');
const built = existsSync(path.join(root, 'out/main/cli.js'));
const dir = mkdtempSync(path.join(tmpdir(), 'mimir-mi-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mimir(args: string[]): { status: number | null; json: Record<string, unknown> } {
  const run = spawnSync(process.execPath, [path.join(root, 'bin/mimir.mjs'), ...args, '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, MIMIR_BACKEND: '' },
  });
  const lines = run.stdout.trim().split('\n');
  expect(lines, `stdout: ${run.stdout}\nstderr: ${run.stderr}`).toHaveLength(1);
  return { status: run.status, json: JSON.parse(lines[0] ?? '{}') as Record<string, unknown> };
}

describe.skipIf(!built)('mimir mi (built CLI)', () => {
  const n = 24;
  const rng = new Rng(4);
  const a = Float32Array.from({ length: n * 6 }, () => rng.normal());
  // B depends on A (a noisy function of its first columns), stored as float64 like NumPy's default.
  const b = Float64Array.from({ length: n * 3 }, (_, i) => {
    const row = Math.floor(i / 3);
    return Math.tanh(a[row * 6 + (i % 3)] ?? 0) + 0.2 * rng.normal();
  });
  const file = (name: string): string => path.join(dir, name);

  beforeAll(async () => {
    await useBackend('wasm');
    await writeNpy(file('a.npy'), { dtype: 'float32', shape: [n, 2, 3], data: a });
    await writeNpy(file('b.npy'), { dtype: 'float64', shape: [n, 3], data: b });
    await writeNpy(file('short.npy'), { dtype: 'float64', shape: [n - 1, 3], data: b.slice(0, (n - 1) * 3) });
    await writeNpy(file('one.npy'), { dtype: 'float32', shape: [1, 6], data: a.slice(0, 6) });
    const nan = Float64Array.from(b);
    nan[7] = Number.NaN;
    await writeNpy(file('nan.npy'), { dtype: 'float64', shape: [n, 3], data: nan });
    // Finite in float64, past float32's range: the estimate overflows.
    await writeNpy(file('huge.npy'), { dtype: 'float64', shape: [n, 3], data: b.map((v) => v * 1e39) });
  });

  for (const estimator of MI_ESTIMATORS) {
    it(`prints the in-process ${estimator} estimate as JSON`, () => {
      const { status, json } = mimir([
        'mi',
        '--estimator',
        estimator,
        '--a',
        file('a.npy'),
        '--b',
        file('b.npy'),
        '--sigma',
        '2',
        '--backend',
        'wasm',
      ]);
      expect(status).toBe(0);
      const expected = tf.tidy(
        () =>
          mutualInformation(estimator, tf.tensor2d(a, [n, 6]), tf.tensor2d(Float32Array.from(b), [n, 3]), {
            sigma: 2,
          }).dataSync()[0] as number,
      );
      expect(json).toMatchObject({ estimator, n, dA: 6, dB: 3, backend: 'wasm' });
      expect(Math.abs((json.value as number) - expected)).toBeLessThanOrEqual(1e-6 * Math.abs(expected));
    });
  }

  it('fails clearly on mismatched rows, one sample, NaN, a missing file and a bad option', () => {
    const cases: [string[], RegExp][] = [
      [['--a', file('a.npy'), '--b', file('short.npy')], /--a has 24 rows and --b has 23/],
      [['--a', file('one.npy'), '--b', file('one.npy')], /at least 2 samples/],
      [['--a', file('a.npy'), '--b', file('nan.npy')], /--b: value 7 \(row 2\) is NaN/],
      [['--a', file('missing.npy'), '--b', file('b.npy')], /--a: no such file/],
      [['--a', file('a.npy'), '--b', file('b.npy'), '--estimator', 'renyi', '--alpha', '0.5'], /alpha must be above 1/],
    ];
    for (const [args, message] of cases) {
      const { status, json } = mimir(['mi', ...args]);
      expect(status).toBe(1);
      expect(json.type).toBe('failed');
      expect(json.message).toMatch(message);
    }
  });

  it('exits non-zero with a message when the estimate overflows, for every estimator', () => {
    for (const estimator of MI_ESTIMATORS) {
      const { status, json } = mimir(['mi', '--a', file('a.npy'), '--b', file('huge.npy'), '--estimator', estimator]);
      expect(status, JSON.stringify(json)).toBe(1);
      expect(json.type).toBe('failed');
      // nhsic's and renyi's linear algebra stops first, on a non-finite Gram matrix.
      const expected =
        estimator !== 'hsic'
          ? /the input is not finite/
          : new RegExp(`the ${estimator} estimate is (NaN|-?Infinity): the data overflow float32 .*Scale the data`);
      expect(json.message).toMatch(expected);
    }
  });
});
