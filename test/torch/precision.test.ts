import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { events, runMimir } from '../helpers/cli';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/** GradScaler's documented contract, for the enabled path on a machine without CUDA. */
const CONTRACT_SCALER = `
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
`;

/**
 * Mixed precision on the PyTorch engine (python/mimir_torch/precision.py): which precision a run gets
 * from --precision and the device, the pre-training and fine-tuning steps' loss scaling, and the fp16
 * path of the optimiser (GradScaler's unscale_, clip, step, update; an overflowed step is skipped). This machine has no CUDA device and
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

  it('chooses bf16 where the GPU has it, else fp16 with loss scaling; refuses what the device cannot run', () => {
    const script = `
import json
from mimir_torch.config import ConfigError
from mimir_torch.precision import choose_precision
cases = [("auto", "cpu", False), ("auto", "cuda", True), ("auto", "cuda", False), ("fp32", "cuda", True),
         ("bf16", "cuda", True), ("fp16", "cuda", True), ("fp16", "cuda", False),
         ("bf16", "cpu", False), ("fp16", "cpu", False), ("bf16", "cuda", False), ("fp8", "cuda", True)]
out = []
for c in cases:
    try:
        out.append(choose_precision(*c))
    except ConfigError as error:
        out.append("error: " + str(error))
print(json.dumps(out))
`;
    const out = runPython<string[]>(python, ['-c', script], { env });
    expect(out.slice(0, 7)).toEqual(['fp32', 'bf16', 'fp16', 'fp32', 'bf16', 'fp16', 'fp16']);
    expect(out[7]).toMatch(
      /^error: --precision bf16 needs a CUDA device; this run is on the cpu: use --precision fp32/,
    );
    expect(out[8]).toMatch(/^error: --precision fp16 needs a CUDA device/);
    expect(out[9]).toMatch(/^error: --precision bf16: this GPU does not support bfloat16; use --precision fp16/);
    expect(out[10]).toMatch(/^error: --precision 'fp8': choose one of auto, fp32, bf16, fp16/);
  });

  it('the optimiser under loss scaling: a disabled GradScaler is the plain step; a scaled step unscales exactly; an overflow skips the update', () => {
    const script = `
import json, torch
from mimir_torch.optim import AdamW

${CONTRACT_SCALER}
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
  });

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
  });

  /** A micro classifier and one batch; `step(method, scale)` is one fine-tuning step's result at a loss scale. */
  const FINETUNE_SETUP = `
import json, torch
from mimir_torch import model as M
from mimir_torch.config import FinetuneSettings, ModelConfig
from mimir_torch.finetune_step import finetune_step, start_noise
from mimir_torch.generalist import GeneralistTrainer
from mimir_torch.optim import AdamW
from mimir_torch.rng import Rng
C = 3
c = ModelConfig.parse({"imageSize": 8, "patchSize": 4, "channels": 3, "width": 16, "depth": 1, "heads": 2, "mlpRatio": 2,
                       "decoderWidth": 16, "decoderDepth": 1, "decoderHeads": 2, "dropPath": 0.1}, "model")
def settings(method):
    return FinetuneSettings.parse({"method": method, "threat": {"norm": "linf", "eps": 8}, "attack": {"steps": 2, "alpha": 2, "randomStart": True},
        "fastAt": {"alphaFactor": 1.25}, "trades": {"beta": 6}, "mart": {"beta": 6}, "dropPath": 0.1, "labelSmoothing": 0.1, "epochs": 4,
        "dbat": {"attack": "targeted", "realTargetEpochs": 0.5, "merge": "logsumexp", "labelSmoothing": None}, "apgdAt": {"steps": 3, "rho": 0.75},
        "generalist": {"emaDecay": 0.99, "robustWeightStart": 0.5, "robustWeightEnd": 0.8, "mixRampStart": 0.25, "syncStart": 0.5, "syncEvery": 1}}, "run")
def fresh_params(method):
    outputs = 2 * C if method == "dbat" else C
    return {k: v.requires_grad_(True) for k, v in M.init_params_rng(M.classifier_param_specs(c, outputs), Rng(3), 0.02).items()}
g = torch.Generator().manual_seed(1)
images = torch.rand(4, 8, 8, 3, generator=g)
labels = torch.tensor([0, 1, 2, 1])
targets = torch.nn.functional.one_hot(labels, C).float()
ids = [5, 9, 12, 30]
def step(method, params, scale):
    run = settings(method)
    noise = start_noise(run, 77, ids, tuple(images.shape))
    return finetune_step(params, c, run, images, targets, labels, noise, Rng(11), seed=77, ids=ids, epoch=1, loss_scale=scale)
OPTIMIZER = {"beta1": 0.9, "beta2": 0.999, "weightDecay": 0.05, "clipGrad": 1.0, "layerDecay": 0.75}
def learner_grads(scale):
    trainer = GeneralistTrainer(fresh_params("generalist"), c, settings("generalist"), OPTIMIZER)
    noise = start_noise(trainer.run, 77, ids, tuple(images.shape))
    return trainer, trainer.gradients(images, targets, labels, noise, Rng(11), scale)
${CONTRACT_SCALER}
`;

  it('every fine-tuning method takes the gradients of its scaled loss: at scale 1024 exactly 1024x, the attack unchanged', () => {
    const script = `${FINETUNE_SETUP}
out = {}
def compare(one, big):
    return {"exact": all(torch.equal(big[k], one[k] * 1024) for k in one), "nonzero": sum(int(bool((v != 0).any())) for v in one.values()), "count": len(one)}
for method in ("natural", "pgd-at", "fast-at", "trades", "mart", "dbat", "apgd-at"):
    params = fresh_params(method)
    one, big = step(method, params, 1.0), step(method, params, 1024.0)
    same_attack = (one.adversarial is None and big.adversarial is None) or torch.equal(one.adversarial, big.adversarial)
    out[method] = {**compare(one.grads, big.grads), "sameLoss": torch.equal(one.loss, big.loss), "sameAttack": same_attack}
_, one = learner_grads(1.0)
_, big = learner_grads(1024.0)
for learner in ("robust", "natural"):
    out["generalist " + learner] = {**compare(getattr(one, learner), getattr(big, learner)), "sameLoss": torch.equal(getattr(one, learner + "_loss"), getattr(big, learner + "_loss")), "sameAttack": True}
out["generalist robust"]["takenAt"] = big.loss_scale
print(json.dumps(out))
`;
    type Compared = { exact: boolean; nonzero: number; count: number; sameLoss: boolean; sameAttack: boolean };
    const r = runPython<Record<string, Compared & { takenAt?: number }>>(python, ['-c', script], { env });
    const cases = [
      'natural',
      'pgd-at',
      'fast-at',
      'trades',
      'mart',
      'dbat',
      'apgd-at',
      'generalist robust',
      'generalist natural',
    ];
    expect(Object.keys(r).sort()).toEqual([...cases].sort());
    for (const name of cases) {
      // A power-of-two scale multiplies every float32 product and sum of the backward pass exactly
      // (no overflow or underflow at these magnitudes), so the comparison is equality, not a tolerance.
      const compared = r[name];
      expect(compared, name).toMatchObject({ exact: true, sameLoss: true, sameAttack: true });
      expect(compared?.nonzero, name).toBeGreaterThan((compared?.count ?? Infinity) / 2);
    }
    expect(r['generalist robust']?.takenAt).toBe(1024);
  });

  it('fine-tuning under a scaler: a finite scaled step is the plain update, an overflowed one is skipped; generalist skips only the learner that overflowed', () => {
    const script = `${FINETUNE_SETUP}
same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
snapshot = lambda ps: {k: v.detach().clone() for k, v in ps.items()}
def optimiser(params):
    return AdamW(params, betas=(0.9, 0.999), weight_decay=0.05, max_grad_norm=1.0)
plain = fresh_params("pgd-at")
norm_plain = optimiser(plain).step(step("pgd-at", plain, 1.0).grads, 1e-3)
scaled = fresh_params("pgd-at")
scaler = ContractScaler(1024.0)
norm_scaled, skipped = optimiser(scaled).scaled_step(step("pgd-at", scaled, scaler.get_scale()).grads, 1e-3, scaler)
over = fresh_params("pgd-at")
before = snapshot(over)
grads = step("pgd-at", over, 1024.0).grads
grads["head.bias"] = torch.full_like(grads["head.bias"], float("inf"))
over_scaler = ContractScaler(1024.0)
_, over_skipped = optimiser(over).scaled_step(grads, 1e-3, over_scaler)

plain_trainer, g = learner_grads(1.0)
plain_trainer.apply(g.robust, g.natural, 1e-3, 0, 0, 4, 0)
finite_trainer, g = learner_grads(1024.0)
_, _, _, finite_skipped = finite_trainer.apply(g.robust, g.natural, 1e-3, 0, 0, 4, 0, ContractScaler(1024.0), g.loss_scale)
over_trainer, g = learner_grads(1024.0)
robust_before = snapshot(over_trainer.learner("robust."))
g.robust["head.bias"] = torch.full_like(g.robust["head.bias"], float("inf"))
learner_scaler = ContractScaler(1024.0)
_, _, _, learners_skipped = over_trainer.apply(g.robust, g.natural, 1e-3, 0, 0, 4, 0, learner_scaler, g.loss_scale)
print(json.dumps({
    "scaledEqualsPlain": same(scaled, plain), "skipped": skipped, "norms": [norm_plain, norm_scaled],
    "overUnchanged": same(over, before), "overSkipped": over_skipped, "overScale": over_scaler.get_scale(),
    "finiteEqualsPlain": same(finite_trainer.state, plain_trainer.state), "finiteSkipped": finite_skipped,
    "robustUnchanged": same(over_trainer.learner("robust."), robust_before),
    "naturalEqualsPlain": same(over_trainer.learner("natural."), plain_trainer.learner("natural.")),
    "naturalMoved": not same(over_trainer.learner("natural."), fresh_params("generalist")),
    "learnersSkipped": learners_skipped, "learnerScale": learner_scaler.get_scale(),
}))
`;
    const r = runPython<Record<string, unknown>>(python, ['-c', script], { env });
    // 1024 is a power of two: unscaling is exact, so the update is bit-for-bit the unscaled one.
    expect(r.scaledEqualsPlain).toBe(true);
    expect(r.skipped).toBe(false);
    const [normPlain, normScaled] = r.norms as number[];
    expect(normScaled).toBe(normPlain);
    expect(r.overUnchanged).toBe(true);
    expect(r.overSkipped).toBe(true);
    expect(r.overScale).toBe(512);
    expect(r.finiteEqualsPlain).toBe(true);
    expect(r.finiteSkipped).toEqual([]);
    // The robust learner overflowed: its update is skipped and the scale halves; the natural learner's
    // gradients, taken at 1024, are brought to 512 before the scaler unscales them, so its update is the plain one.
    expect(r.robustUnchanged).toBe(true);
    expect(r.naturalEqualsPlain).toBe(true);
    expect(r.naturalMoved).toBe(true);
    expect(r.learnersSkipped).toEqual(['robust']);
    expect(r.learnerScale).toBe(512);
  });

  it('a fine-tuning run reports an overflowed update as a warn log event with the new scale, and goes on (pgd-at, generalist)', () => {
    // The workbench writes the job (torch-job.node0.json) in an fp32 CPU run; the same job then runs
    // through run_finetuning with a scaler that keeps GradScaler's contract and reports an overflow on
    // its first unscale_, as an fp16 inf would: the path a CUDA fp16 run takes when a step overflows.
    const script = `
import json, sys, torch
from mimir_torch.distributed import close_world, init_world
from mimir_torch.events import Emitter
from mimir_torch.finetune_run import run_finetuning
from mimir_torch.precision import Precision
from mimir_torch.runtime import Stop
${CONTRACT_SCALER}
class OverflowOnce(ContractScaler):
    def __init__(self, scale):
        super().__init__(scale)
        self.unscales, self.steps = 0, 0
    def unscale_(self, optimizer):
        super().unscale_(optimizer)
        self.unscales += 1
        self.found_inf |= self.unscales == 1
    def step(self, optimizer):
        self.steps += int(not self.found_inf)
        super().step(optimizer)
job = json.load(open(sys.argv[1]))
device = torch.device("cpu")
world = init_world(device)
scaler = OverflowOnce(1024.0)
run_finetuning(job["config"], False, None, sys.argv[2], device, Precision("fp32", scaler), world, Emitter(world.rank), Stop())
close_world(world)
print(json.dumps({"updates": scaler.steps, "unscales": scaler.unscales, "scale": scaler.get_scale()}))
`;
    for (const [method, learner] of [
      ['pgd-at', 'this'],
      ['generalist', "the robust learner's"],
    ] as const) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'mimir-precision-'));
      const config = path.join(dir, 'config.input.json');
      writeFileSync(config, JSON.stringify({ attack: { steps: 1 }, headInitStd: 0.02 }));
      const prepared = runMimir(
        [
          'finetune',
          ...['--engine', 'torch', '--device', 'cpu', '--precision', 'fp32', '--scratch', '--model', 'micro'],
          ...['--method', method, '--dataset-size', '16', '--image-size', '16', '--batch', '8', '--epochs', '1'],
          ...['--config', config, '--out', path.join(dir, 'fp32'), '--json'],
        ],
        { OMP_NUM_THREADS: '1' },
      );
      expect(prepared.status, prepared.stderr).toBe(0);
      const job = path.join(dir, 'fp32', 'torch-job.node0.json');
      const run = spawnSync(python.executable, ['-c', script, job, path.join(dir, 'scaled')], {
        env,
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      const lines = run.stdout.trim().split('\n');
      const list = events(lines.slice(0, -1).join('\n'));
      const warnings = list.filter((e) => e.type === 'log' && e.level === 'warn');
      expect(warnings.map((e) => e.type === 'log' && e.message)).toEqual([
        `step 1: fp16 gradients overflowed (inf or NaN); GradScaler skipped ${learner} update and lowered the loss scale to 512.`,
      ]);
      expect(list.at(-1)).toMatchObject({ type: 'done', step: 2 });
      // Two steps: pgd-at unscales once a step, generalist once per learner; all but the first update applied.
      const counts = JSON.parse(lines.at(-1) ?? '{}') as { updates: number; unscales: number; scale: number };
      const unscales = method === 'generalist' ? 4 : 2;
      expect(counts, method).toEqual({ updates: unscales - 1, unscales, scale: 512 });
    }
  }, 240_000);

  it('--precision fp16 on the CPU fails with the reason and what to use instead (pre-training and fine-tuning)', () => {
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
    const common = ['--dataset-size', '16', '--batch', '8', '--json'];
    for (const command of [['pretrain'], ['finetune', '--scratch', '--method', 'pgd-at']]) {
      const out = path.join(dir, command.join('-'));
      const run = runMimir([...command, ...args, ...common, '--out', out]);
      expect(run.status, run.stderr).toBe(1);
      const failed = events(run.stdout).find((e) => e.type === 'failed');
      expect(failed?.type === 'failed' && failed.message, command.join(' ')).toMatch(
        /--precision fp16 needs a CUDA device; this run is on the cpu: use --precision fp32/,
      );
    }
  }, 240_000);
});
