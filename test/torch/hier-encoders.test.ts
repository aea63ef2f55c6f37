import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { modelConfigFromPreset } from '../../src/shared/model-config';
import { modelSummary } from '../../src/shared/model-summary';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { timmPython } from '../helpers/timm-python';
import { PYTHON_DIR } from './golden';

/**
 * Issue 18's encoders on the PyTorch engine: the python unittest modules under python/tests, run with
 * Debian's python3 (torch 1.13). Each module is one test here; a failure shows unittest's report.
 */
const MODULES = [
  // SparK's sparse convolution and sparse norms against float64 references.
  'tests.test_sparse_conv',
  // ConvNeXt's sparse forward, SparK's loss and MIMIR steps (micro size).
  'tests.test_convnext',
  // Group window attention (GreenMIM) and Swin's visible-token encoder, MIMIR steps (micro size).
  'tests.test_swin',
  // Through the engine's encoder dispatch: specs, init, transfer from a pre-training, PGD-AT steps.
  'tests.test_hier_dispatch',
  // The evaluation's PGD (l_inf, l_2, restarts) against a float64 reference on a linear model.
  'tests.test_evaluate_pgd',
  // The evaluation's gradient-masking checks on tiny models where each must fire and where none may.
  'tests.test_gradient_masking',
  // The evaluation's reader of the corrupted images the Node side writes, and its corruption table.
  'tests.test_corruption_feed',
  // ConvNeXt (SparK) and Swin (GreenMIM) reconstruction previews: strips, mask, norm_pix mapped back.
  'tests.test_hier_previews',
];
/** Against timm (PyPI) in the venv of test/helpers/timm-python.ts: counts, strict loads, logits. */
const TIMM_MODULES = ['tests.test_timm_parity'];

function runUnittest(executable: string, module: string): { status: number | null; report: string } {
  const run = spawnSync(executable, ['-m', 'unittest', '-v', module], {
    cwd: PYTHON_DIR,
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 16 * 2 ** 20,
    env: { ...process.env, PYTHONPATH: PYTHON_DIR },
  });
  return { status: run.status, report: `${run.error?.message ?? ''}${run.stdout}${run.stderr}` };
}

describe('hierarchical encoders (python unit tests)', () => {
  const found = findPythonWithTorch();
  for (const module of MODULES) {
    it(
      module,
      () => {
        if (!found.python) throw new Error(found.reason);
        const { status, report } = runUnittest(found.python.executable, module);
        expect(status, report).toBe(0);
        expect(report).toMatch(/\nOK/);
      },
      600_000,
    );
  }
});

describe('hierarchical encoders against timm', () => {
  for (const module of TIMM_MODULES) {
    it(
      module,
      () => {
        const { status, report } = runUnittest(timmPython(), module);
        expect(status, report).toBe(0);
        expect(report).toMatch(/\nOK/);
      },
      900_000,
    );
  }
});

describe('presets as the PyTorch engine builds them', () => {
  const found = findPythonWithTorch();
  it("convnext-t and swin-b have timm's parameter counts; model-summary.ts counts every preset's", () => {
    if (!found.python) throw new Error(found.reason);
    const presets = ['convnext-t', 'swin-b', 'convnext-micro', 'swin-micro'] as const;
    const configs = presets.map((p) => modelConfigFromPreset(p));
    const script = [
      'import json, math, sys',
      'from mimir_torch import model as M',
      'from mimir_torch.config import ModelConfig',
      'configs = json.loads(sys.argv[1])',
      'specs = [M.classifier_param_specs(ModelConfig.parse(c), 1000) for c in configs]',
      'counts = [sum(math.prod(shape) for _, shape, _ in s) for s in specs]',
      'print(json.dumps({"counts": counts}))',
    ].join('\n');
    const { counts } = runPython<{ counts: number[] }>(found.python, ['-c', script, JSON.stringify(configs)], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR },
      timeoutMs: 600_000,
    });
    // timm 0.9.16: convnext_tiny 28,589,128 and swin_base_patch4_window7_224 87,768,224 parameters.
    expect(counts.slice(0, 2)).toEqual([28_589_128, 87_768_224]);
    // The form's and doctor's analytic counts (model-summary.ts) are the modules' for every preset.
    expect(configs.map((c) => modelSummary(c, 1000)?.parameters)).toEqual(counts);
  }, 600_000);
});
