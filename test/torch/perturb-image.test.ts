import { describe, expect, it } from 'vitest';
import { findPythonWithTorch, runPython } from '../engine/io/python-torch';
import { PYTHON_DIR } from './golden';

/**
 * perturb: image on the PyTorch engine follows the updated spec (section 3): the attack's target is the
 * adversarial image itself, with the gradient flowing through it, so every pixel, masked or not,
 * moves by alpha in one step from a zero start (none sits at 0 or 1 here, eps >= alpha). With a
 * clean, detached target the masked 75% would not move at all. (The tfjs engine on this branch still
 * uses the clean target: no golden step for this option until the branches meet.)
 */
describe('perturb: image (PyTorch engine)', () => {
  const found = findPythonWithTorch();
  const python = found.python;
  if (!python) {
    it.skip(`skipped: ${found.reason}`, () => undefined);
    return;
  }
  it('moves every pixel by alpha in one attack step: the adversarial image is its own target', () => {
    const script = `
import json, torch
from mimir_torch import model as M
from mimir_torch.config import ModelConfig, PretrainSettings
from mimir_torch.masking import rng_masking
from mimir_torch.pretrain_step import attack_reconstruction
from mimir_torch.rng import Rng
c = ModelConfig.parse({"imageSize": 16, "patchSize": 4, "channels": 3, "width": 32, "depth": 2, "heads": 2, "mlpRatio": 4, "decoderWidth": 32, "decoderDepth": 1, "decoderHeads": 2})
run = PretrainSettings.parse({"mode": "adv-mae", "maskRatio": 0.75, "normPixLoss": True,
  "attack": {"steps": 1, "eps": 8, "alpha": 2, "perturb": "image", "attackMask": "shared"},
  "mi": {"estimator": "hsic", "sigma": 5, "bandwidth": "fixed", "alpha": 1.01, "epsR": 1e-5}})
rng = Rng(1)
params = M.init_params_rng(M.mae_param_specs(c), rng)
images = 0.1 + 0.8 * torch.rand(4, 16, 16, 3, generator=torch.Generator().manual_seed(0))
mask = rng_masking(rng, 4, c.num_patches, 0.75)
adv, _ = attack_reconstruction(params, c, run, images, mask, torch.zeros_like(images), lambda: mask)
moved = ((adv - images).abs() * 255).reshape(4, c.num_patches, -1)
m = torch.zeros(4, c.num_patches, dtype=torch.bool)
m.scatter_(1, mask.masked_ids, True)
print(json.dumps({"masked_min": moved[m].min().item(), "masked_max": moved[m].max().item(),
  "visible_min": moved[~m].min().item(), "visible_max": moved[~m].max().item()}))
`;
    const r = runPython<Record<string, number>>(python, ['-c', script], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR },
    });
    for (const key of ['masked_min', 'masked_max', 'visible_min', 'visible_max']) {
      expect(r[key], key).toBeCloseTo(2, 4);
    }
  });
});
