import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { events, runMimir } from '../helpers/cli';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * Mixed precision on the PyTorch engine (python/mimir_torch/precision.py): which precision a run gets
 * from --precision and the device, and the fp16 loss-scaling path of the optimiser (GradScaler's
 * unscale_, clip, step, update; an overflowed step is skipped). This machine has no CUDA device and
 * torch 1.13's GradScaler turns itself off without one, so the enabled path runs with a scaler that
 * follows GradScaler's documented contract (the test's own); the disabled path runs the real one.
 */
describe('PyTorch engine precision', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  const env = { ...process.env, PYTHONPATH: PYTHON_DIR, OMP_NUM_THREADS: '1' };

  it('chooses bf16 where the GPU has it, else fp16 with loss scaling (pre-training) or fp32; refuses what the device cannot run', () => {
    const script = `
import json
from mimir_torch.config import ConfigError
from mimir_torch.precision import choose_precision
cases = [("auto", "cpu", False, True), ("auto", "cuda", True, True), ("auto", "cuda", False, True), ("auto", "cuda", False, False),
         ("fp32", "cuda", True, True), ("bf16", "cuda", True, False), ("fp16", "cuda", True, True),
         ("bf16", "cpu", False, True), ("fp16", "cpu", False, True), ("bf16", "cuda", False, True), ("fp16", "cuda", False, False), ("fp8", "cuda", True, True)]
out = []
for c in cases:
    try:
        out.append(choose_precision(*c))
    except ConfigError as error:
        out.append("error: " + str(error))
print(json.dumps(out))
`;
    const out = runPython<string[]>(python, ['-c', script], { env });
    expect(out.slice(0, 7)).toEqual(['fp32', 'bf16', 'fp16', 'fp32', 'fp32', 'bf16', 'fp16']);
    expect(out[7]).toMatch(
      /^error: --precision bf16 needs a CUDA device; this run is on the cpu: use --precision fp32/,
    );
    expect(out[8]).toMatch(/^error: --precision fp16 needs a CUDA device/);
    expect(out[9]).toMatch(/^error: --precision bf16: this GPU does not support bfloat16; use --precision fp16/);
    expect(out[10]).toMatch(/^error: --precision fp16 is for pre-training on the PyTorch engine/);
    expect(out[11]).toMatch(/^error: --precision 'fp8': choose one of auto, fp32, bf16, fp16/);
  }, 60_000);

  it('the optimiser under loss scaling: a disabled GradScaler is the plain step; a scaled step unscales exactly; an overflow skips the update', () => {
    const script = `
import json, torch
from mimir_torch.optim import AdamW

class ContractScaler:
    """GradScaler's documented behaviour: unscale_ divides the grads by the scale and notes inf/NaN;
    step() skips optimizer.step() after an overflow; update() halves the scale after one."""
    def __init__(self, scale):
        self.scale, self.found_inf = scale, False
    def is_enabled(self): return True
    def get_scale(self): return self.scale
    def unscale_(self, optimizer):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.found_inf |= not bool(torch.isfinite(p.grad).all())
                    p.grad.div_(self.scale)
    def step(self, optimizer):
        if not self.found_inf:
            optimizer.step()
    def update(self):
        if self.found_inf:
            self.scale /= 2
        self.found_inf = False

def fresh():
    g = torch.Generator().manual_seed(0)
    params = {"blocks.0.attn.qkv.weight": torch.randn(4, 6, generator=g), "blocks.0.attn.qkv.bias": torch.randn(6, generator=g)}
    grads = {k: torch.randn(v.shape, generator=g) for k, v in params.items()}
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    return params, grads, AdamW(params, betas=(0.9, 0.95), weight_decay=0.05, max_grad_norm=1.0)

plain, grads, opt = fresh()
norm_plain = opt.step(grads, 1e-2)
off, _, opt_off = fresh()
norm_off, skipped_off = opt_off.scaled_step(grads, 1e-2, torch.cuda.amp.GradScaler(enabled=False))
scaled, _, opt_scaled = fresh()
scaler = ContractScaler(1024.0)
norm_scaled, skipped_scaled = opt_scaled.scaled_step({k: g * 1024 for k, g in grads.items()}, 1e-2, scaler)
over, _, opt_over = fresh()
before = {k: v.detach().clone() for k, v in over.items()}
bad = dict(grads); bad["blocks.0.attn.qkv.bias"] = torch.full((6,), float("inf"))
over_scaler = ContractScaler(1024.0)
_, skipped_over = opt_over.scaled_step(bad, 1e-2, over_scaler)
same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
print(json.dumps({
    "offEqualsPlain": same(off, plain), "offSkipped": skipped_off, "normsOff": [norm_plain, norm_off],
    "scaledEqualsPlain": same(scaled, plain), "scaledSkipped": skipped_scaled, "normScaled": norm_scaled, "scaleAfter": scaler.get_scale(),
    "overUnchanged": same(over, before), "overSkipped": skipped_over, "overScale": over_scaler.get_scale(),
    "overSteps": opt_over.step_count, "overState": len(opt_over.optimizer.state), "plainSteps": opt.step_count,
}))
`;
    const r = runPython<Record<string, unknown>>(python, ['-c', script], { env });
    expect(r.offEqualsPlain).toBe(true);
    expect(r.offSkipped).toBe(false);
    const [normPlain, normOff] = r.normsOff as number[];
    expect(normOff).toBe(normPlain);
    // A power-of-two scale divides out exactly: the same update, and the norm of the unscaled gradients.
    expect(r.scaledEqualsPlain).toBe(true);
    expect(r.scaledSkipped).toBe(false);
    expect(r.normScaled).toBe(normPlain);
    expect(r.scaleAfter).toBe(1024);
    expect(r.overUnchanged).toBe(true);
    expect(r.overSkipped).toBe(true);
    expect(r.overScale).toBe(512);
    expect(r.overSteps).toBe(0);
    expect(r.overState).toBe(0);
    expect(r.plainSteps).toBe(1);
  }, 60_000);

  it('the pre-training step takes the gradients of the scaled loss (a scale of 1024 multiplies them exactly)', () => {
    const script = `
import json, torch
from mimir_torch import model as M
from mimir_torch.config import ModelConfig, PretrainSettings
from mimir_torch.masking import rng_masking
from mimir_torch.pretrain_step import pretrain_step
from mimir_torch.rng import Rng
c = ModelConfig.parse({"imageSize": 8, "patchSize": 4, "channels": 3, "width": 16, "depth": 1, "heads": 2, "mlpRatio": 2,
                       "decoderWidth": 16, "decoderDepth": 1, "decoderHeads": 2, "dropPath": 0}, "model")
run = PretrainSettings.parse({"mode": "mae", "maskRatio": 0.75, "normPixLoss": False,
    "attack": {"steps": 1, "eps": 8, "alpha": 2, "perturb": "visible", "attackMask": "shared"},
    "mi": {"estimator": "nhsic", "sigma": 1, "bandwidth": "fixed", "alpha": 1.01, "epsR": 1e-6}}, "config")
rng = Rng(5)
params = M.init_params_rng(M.mae_param_specs(c), rng.fork())
images = torch.rand(4, 8, 8, 3, generator=torch.Generator().manual_seed(1))
mask = rng_masking(rng, 4, c.num_patches, 0.75, "spatial")
one = pretrain_step(params, c, run, images, mask, None, lambda: mask).grads
big = pretrain_step(params, c, run, images, mask, None, lambda: mask, 1024.0).grads
print(json.dumps({"exact": all(torch.equal(big[k], one[k] * 1024) for k in one), "nonzero": sum(int(bool((g != 0).any())) for g in one.values()), "count": len(one)}))
`;
    const r = runPython<{ exact: boolean; nonzero: number; count: number }>(python, ['-c', script], { env });
    expect(r.exact).toBe(true);
    expect(r.nonzero).toBeGreaterThan(r.count / 2);
  }, 60_000);

  it('--precision fp16 on the CPU fails with the reason and what to use instead', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-precision-'));
    const args = [
      '--engine',
      'torch',
      '--device',
      'cpu',
      '--precision',
      'fp16',
      '--model',
      'micro',
      '--image-size',
      '16',
    ];
    const run = runMimir(['pretrain', ...args, '--dataset-size', '16', '--batch', '8', '--out', dir, '--json']);
    expect(run.status, run.stderr).toBe(1);
    const failed = events(run.stdout).find((e) => e.type === 'failed');
    expect(failed?.type === 'failed' && failed.message).toMatch(
      /--precision fp16 needs a CUDA device; this run is on the cpu/,
    );
  }, 120_000);
});
