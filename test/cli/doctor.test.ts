import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SystemReport } from '../../src/shared/system';
import { ROOT } from '../helpers/build';
import { runMimir } from '../helpers/cli';
import { findPythonWithTorch } from '../engine/io/python-torch';
import { SWIFTSHADER_ICD, requireSwiftShader } from '../engine/webgpu/swiftshader';
// @ts-expect-error: a plain .mjs script without types
import { nodeVersionProblem } from '../../scripts/check-node.mjs';

describe('mimir doctor', () => {
  it('--json prints a valid report naming the chosen backend and why others were passed over', () => {
    const result = runMimir(['doctor', '--json'], { MIMIR_BACKEND: '' });
    expect(result.status, result.stderr).toBe(0);
    const report = SystemReport.parse(JSON.parse(result.stdout));
    expect(report.processKind).toBe('cli');
    expect(report.chosen).toBe(report.candidates.find((c) => c.available)?.backend);
    const tensorflow = report.candidates.filter((c) => c.backend === 'tensorflow');
    expect(tensorflow).toHaveLength(2);
    if (report.chosen !== 'tensorflow') for (const c of tensorflow) expect(c.available).toBe(false);
  });

  it('reports the PyTorch engine: its python and torch version where found, else why and how to install it', () => {
    const found = findPythonWithTorch();
    const result = runMimir(['doctor', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const report = SystemReport.parse(JSON.parse(result.stdout));
    expect(report.torchEngine?.available).toBe(found.python !== null);
    if (found.python) {
      expect(report.torchEngine?.torch).toBe(found.python.torch);
      expect(report.torchEngine?.gloo).toBe(true);
      expect(runMimir(['doctor']).stdout).toMatch(
        new RegExp(`^PyTorch engine: torch ${found.python.torch.replace(/\./g, '\\.')}`, 'm'),
      );
    }
    const missing = runMimir(['doctor'], { MIMIR_PYTHON: '/nonexistent/python3' });
    expect(missing.status, missing.stderr).toBe(0);
    expect(missing.stdout).toMatch(
      /^PyTorch engine: unavailable\. .*\/nonexistent\/python3.*install PyTorch \(Debian: apt-get install python3-torch/m,
    );
  }, 240_000); // three doctor runs, each importing torch: over a minute on a loaded machine

  it('--models lists every model preset with its encoder, parameters, FLOPs per image and engines', () => {
    const text = runMimir(['doctor', '--models']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /^ {2}vit-s +vit, width 384, depth 12, 6 heads, patch 2; .* parameters, .*FLOPs per 32 px image/m,
    );
    expect(text.stdout).toMatch(
      /^ {2}convstem-micro +convstem, width 32, depth 2, 2 heads, patch 4; 60\.5 k parameters/m,
    );
    const json = runMimir(['doctor', '--models', '--json']);
    expect(json.status, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as { preset: string; parameters: number; engines: string[] }[];
    expect(rows.find((r) => r.preset === 'vit-b')).toMatchObject({ engines: ['tfjs', 'torch'] });
    expect(rows.every((r) => r.parameters > 0)).toBe(true);
  });

  it('prints a human report with every candidate', () => {
    const result = runMimir(['doctor'], { MIMIR_BACKEND: '' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Backend: (tensorflow|wasm|cpu)/);
    for (const module of ['tfjs-node-gpu', 'tfjs-node ', 'tfjs-backend-wasm', 'tfjs-backend-cpu']) {
      expect(result.stdout).toContain(module);
    }
    expect(result.stdout).toMatch(/^GPU: /m);
  });

  it('lists the SwiftShader adapter as passed over, and takes it when forced (VK_ICD_FILENAMES set by this test)', () => {
    requireSwiftShader(); // fails, naming what to install, where SwiftShader is missing
    const env = { VK_ICD_FILENAMES: SWIFTSHADER_ICD, MIMIR_BACKEND: '' };
    const result = runMimir(['doctor', '--json'], env);
    expect(result.status, result.stderr).toBe(0);
    const report = SystemReport.parse(JSON.parse(result.stdout));
    expect(report.webgpu).toMatchObject({
      status: 'cpu-adapter',
      adapter: { vendor: 'google', architecture: 'swiftshader' },
    });
    expect(report.candidates.find((c) => c.backend === 'webgpu')).toMatchObject({
      module: '@tensorflow/tfjs-backend-webgpu',
      available: false,
      reason: expect.stringMatching(/^passed over: CPU adapter google swiftshader/),
    });
    expect(report.chosen).not.toBe('webgpu');

    const human = runMimir(['doctor'], env);
    expect(human.stdout).toMatch(/^WebGPU: CPU adapter google swiftshader \(SwiftShader driver [\d.]+\): SwiftShader/m);
    expect(human.stdout).toMatch(/^ {2}limits: workgroup storage \d+ B, \d+ invocations per workgroup/m);

    const forced = runMimir(['doctor', '--json', '--backend', 'webgpu'], env);
    expect(forced.status, forced.stderr).toBe(0);
    const forcedReport = SystemReport.parse(JSON.parse(forced.stdout));
    expect(forcedReport).toMatchObject({ chosen: 'webgpu', forcedBy: 'flag' });
    // Which variants of the engine's kernels run: SwiftShader has subgroups, and fp32 is the default.
    expect(forcedReport.candidates.find((c) => c.backend === 'webgpu')?.reason).toMatch(
      /; kernels: GEMM fp32; reductions by subgroups$/,
    );
  }, 120_000);

  it('says why WebGPU has no adapter where Dawn finds no Vulkan device it accepts', () => {
    // An ICD file that does not exist: the Vulkan loader finds no driver at all.
    const result = runMimir(['doctor', '--json'], { VK_ICD_FILENAMES: '/nonexistent/icd.json', MIMIR_BACKEND: '' });
    expect(result.status, result.stderr).toBe(0);
    const report = SystemReport.parse(JSON.parse(result.stdout));
    expect(report.webgpu).toMatchObject({ status: 'no-adapter', adapter: null });
    expect(report.candidates.find((c) => c.backend === 'webgpu')?.reason).toMatch(/^no adapter: .*libvulkan1/);
    const forced = runMimir(['doctor', '--json', '--backend', 'webgpu'], { VK_ICD_FILENAMES: '/nonexistent/icd.json' });
    expect(forced.status).toBe(1);
    expect(JSON.parse(forced.stdout).message).toMatch(
      /^Backend "webgpu" was forced by --backend but is unavailable: @tensorflow\/tfjs-backend-webgpu: no adapter/,
    );
  }, 120_000);

  it('honours --backend and MIMIR_BACKEND, and fails clearly on a bad name', () => {
    const flag = runMimir(['doctor', '--json', '--backend', 'cpu']);
    expect(SystemReport.parse(JSON.parse(flag.stdout))).toMatchObject({ chosen: 'cpu', forcedBy: 'flag' });
    const env = runMimir(['doctor', '--json'], { MIMIR_BACKEND: 'cpu' });
    expect(SystemReport.parse(JSON.parse(env.stdout))).toMatchObject({ chosen: 'cpu', forcedBy: 'env' });
    const bad = runMimir(['doctor', '--json'], { MIMIR_BACKEND: 'gpu' });
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({
      type: 'failed',
      message: 'Unknown backend "gpu" in MIMIR_BACKEND; choose one of: tensorflow, webgpu, wasm, cpu.',
      step: null,
      lastCheckpoint: null,
    });
  });
});

describe('the Node version check', () => {
  it('accepts 22.12+ and explains what to do on older Node', () => {
    expect(nodeVersionProblem('22.12.0', '/x/node')).toBeNull();
    expect(nodeVersionProblem('24.21.0', '/x/node')).toBeNull();
    expect(nodeVersionProblem('22.11.0', '/x/node')).toMatch(/needs Node.js 22.12 or newer; this is Node 22.11.0/);
    expect(nodeVersionProblem('20.20.2', '/usr/bin/node')).toMatch(/npm install/);
  });

  // Runs where the machine's own Node is too old (this project's dev machines and CI have Node 20).
  const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find((file) => existsSync(file));
  const version = systemNode ? execFileSync(systemNode, ['--version'], { encoding: 'utf8' }).trim().slice(1) : '';
  const oldSystemNode = systemNode !== undefined && nodeVersionProblem(version, systemNode) !== null;
  it.runIf(oldSystemNode)('stops `mimir` with that message, not a crash, on an old system Node', () => {
    if (!systemNode) throw new Error('unreachable: no system node');
    try {
      execFileSync(systemNode, [path.join(ROOT, 'bin/mimir.mjs'), 'doctor'], { encoding: 'utf8', stdio: 'pipe' });
      expect.unreachable('mimir ran on an old Node');
    } catch (error) {
      const failure = error as { status: number; stderr: string };
      expect(failure.status).toBe(1);
      expect(failure.stderr).toContain(`this is Node ${version}`);
      expect(failure.stderr).not.toMatch(/Segmentation|SyntaxError|TypeError/);
    }
  });
});
