import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunEvent } from '../../src/shared/run-events';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * GPU system metrics of the PyTorch engine (python/mimir_torch/system_metrics.py): nvidia-smi's
 * utilisation and memory of rank 0's GPU (a stand-in nvidia-smi on PATH, written here) with torch's
 * allocator figures, recorded in the metrics events. No CUDA device here: torch's memory readers are
 * replaced by fixed figures; everything else is the code a CUDA run executes.
 */
describe('GPU system metrics', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }

  function standInSmi(output: string): { dir: string; calls: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-smi-'));
    const calls = path.join(dir, 'calls.txt');
    const file = path.join(dir, 'nvidia-smi');
    writeFileSync(file, `#!/bin/sh\necho "$@" >> ${JSON.stringify(calls)}\ncat <<'OUT'\n${output}\nOUT\n`);
    chmodSync(file, 0o755);
    return { dir, calls };
  }

  const script = (visible: string) => `
import io, json, os, sys
os.environ["CUDA_VISIBLE_DEVICES"] = ${JSON.stringify(visible)}
from mimir_torch.system_metrics import GpuMonitor, MIB
from mimir_torch.events import Emitter, StepEvents
warnings = []
monitor = GpuMonitor(0, warnings.append, memory=lambda i: (3 * MIB, 5.5 * MIB))
first = monitor.sample()
second = monitor.sample()
captured, real = io.StringIO(), sys.stdout
sys.stdout = captured
StepEvents(Emitter(0), 8, 1, 2, 1, monitor.sample).after(1, 0, 0, 0.5, {"loss": 1.0}, 1e-3, {})
sys.stdout = real
print(json.dumps({"first": first, "second": second, "warnings": warnings, "events": captured.getvalue().splitlines()}))
`;

  it("records rank 0's GPU (CUDA_VISIBLE_DEVICES=1 is nvidia-smi's GPU 1) in each metrics event", () => {
    const { dir, calls } = standInSmi('0, 12, 1000\n1, 87, 12034');
    const r = runPython<{ first: object; second: object; warnings: string[]; events: string[] }>(
      python,
      ['-c', script('1')],
      { env: { ...process.env, PYTHONPATH: PYTHON_DIR, PATH: `${dir}:${process.env.PATH ?? ''}` } },
    );
    const expected = {
      sys_gpu_mem_allocated_mib: 3,
      sys_gpu_mem_peak_mib: 5.5,
      sys_gpu_util_pct: 87,
      sys_gpu_mem_used_mib: 12034,
    };
    expect(r.first).toEqual(expected);
    expect(r.second).toEqual(expected);
    expect(r.warnings).toEqual([]);
    expect(readFileSync(calls, 'utf8').trim().split('\n')[0]).toBe(
      '--query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits',
    );
    const metrics = r.events.map((line) => RunEvent.parse(JSON.parse(line))).find((e) => e.type === 'metrics');
    expect(metrics?.type === 'metrics' && metrics.values).toMatchObject({ loss: 1, ...expected });
  });

  it('leaves out what nvidia-smi cannot read ([N/A]) and keeps the rest', () => {
    const { dir } = standInSmi('0, [N/A], 2048');
    const r = runPython<{ first: object; warnings: string[] }>(python, ['-c', script('')], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR, PATH: `${dir}:${process.env.PATH ?? ''}` },
    });
    expect(r.first).toEqual({ sys_gpu_mem_allocated_mib: 3, sys_gpu_mem_peak_mib: 5.5, sys_gpu_mem_used_mib: 2048 });
    expect(r.warnings).toEqual([]);
  });

  it('an nvidia-smi that prints something else: one warning that says what, then memory only, nvidia-smi not asked again', () => {
    const { dir, calls } = standInSmi('NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.');
    const r = runPython<{ first: object; second: object; warnings: string[] }>(python, ['-c', script('')], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR, PATH: `${dir}:${process.env.PATH ?? ''}` },
    });
    expect(r.first).toEqual({ sys_gpu_mem_allocated_mib: 3, sys_gpu_mem_peak_mib: 5.5 });
    expect(r.second).toEqual(r.first);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^GPU utilisation is not recorded: nvidia-smi failed \(nvidia-smi line 1 has 1 fields, expected index, utilization\.gpu, memory\.used: .*could not communicate/,
    );
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toHaveLength(1);
  });
});
