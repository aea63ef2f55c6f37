"""One MIMIR pre-training step (paper Algorithm 1, spec section 3), as src/engine/pretrain/step.ts:

  1. delta from a uniform start in the eps-ball; `steps` signed-gradient ascent steps of size alpha on
     the reconstruction loss, projected to the eps-ball and to [0, 1];
  2. z = encoder(x + delta); loss = recon(decoder(z), clean x on masked patches) + lambda * MI(x + delta, z),
     MI's z taken at mi.layer (Table XXI: block k's output, with or without the final norm);
  3. gradients of the loss w.r.t. every parameter (the caller steps the optimiser).

perturb 'visible': delta lives on the encoder's visible patches (the paper) and the attack's target is
the clean image, detached. perturb 'image': delta covers the whole image and, as the authors' code
and the spec say, the attack's target is the adversarial image itself with the gradient flowing
through it. attackMask 'fresh' draws a new mask for every forward pass. MI(x + delta, z) is computed
in every mode and enters the loss only in mode mimir.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from . import model as M
from .config import ModelConfig, PretrainSettings
from .masking import PatchMask
from .mi import mutual_information


@dataclass
class PretrainStepResult:
    loss: torch.Tensor
    recon: torch.Tensor
    mi: torch.Tensor
    attack_loss: torch.Tensor
    adversarial: torch.Tensor  # [N, H, W, C]
    grads: Dict[str, torch.Tensor]


def _project(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(x + torch.clamp(delta, -eps, eps), 0.0, 1.0) - x


def _visible_to_image(c: ModelConfig, values: torch.Tensor, mask: PatchMask) -> torch.Tensor:
    """Per-input-patch values [N, M, K] (mae_input's shape) as an image [N, H, W, C]: visible patches with
    zeros at masked ones, or every patch in place when the encoder reads them all (ConvStem)."""
    n, m, k = values.shape
    if m == c.num_patches:
        return M.unpatchify(values, c.patch_size, c.channels)
    full = torch.zeros(n, c.num_patches, k, dtype=values.dtype, device=values.device)
    full.scatter_(1, mask.visible_ids.long().unsqueeze(-1).expand(-1, -1, k), values)
    return M.unpatchify(full, c.patch_size, c.channels)


def _recon(params: M.Params, c: ModelConfig, vis_input: torch.Tensor, targets: torch.Tensor, mask: PatchMask, norm_pix: bool) -> torch.Tensor:
    latent = M.encode_visible(params, c, vis_input, mask.visible_ids)
    pred = M.decode(params, c, latent, mask.visible_ids, mask.masked_ids)
    return M.reconstruction_loss(pred, targets, mask.num_visible, norm_pix)


def attack_reconstruction(
    params: M.Params,
    c: ModelConfig,
    run: PretrainSettings,
    images: torch.Tensor,
    mask: PatchMask,
    start: torch.Tensor,
    draw_mask: Callable[[], PatchMask],
):
    """Step 1. `start` is the uniform draw in [-eps, eps]: [N, Lv, K] for 'visible', [N, H, W, C] for 'image'.
    Returns (adversarial images, the attack's last reconstruction loss). Parameters get no gradient here."""
    eps, alpha = run.attack.eps / 255.0, run.attack.alpha / 255.0
    frozen = {name: p.detach() for name, p in params.items()}
    loss = torch.zeros(())
    if run.attack.perturb == "visible":
        vis = M.mae_input(c, images, mask.visible_ids)
        targets = M.ordered_patches(c, images, mask.visible_ids, mask.masked_ids)
        delta = _project(vis, start, eps)
        for _ in range(run.attack.steps):
            delta = delta.detach().requires_grad_(True)
            loss = _recon(frozen, c, vis + delta, targets, mask, run.norm_pix_loss)
            (grad,) = torch.autograd.grad(loss, [delta])
            delta = _project(vis, delta.detach() + alpha * torch.sign(grad), eps)
        return images + _visible_to_image(c, delta.detach(), mask), loss.detach()

    delta = _project(images, start, eps)
    for _ in range(run.attack.steps):
        step_mask = draw_mask() if run.attack.attack_mask == "fresh" else mask
        delta = delta.detach().requires_grad_(True)
        adversarial = images + delta
        vis = M.mae_input(c, adversarial, step_mask.visible_ids)
        # The authors' code: the adversarial image is its own target, and the gradient flows through it.
        targets = M.ordered_patches(c, adversarial, step_mask.visible_ids, step_mask.masked_ids)
        loss = _recon(frozen, c, vis, targets, step_mask, run.norm_pix_loss)
        (grad,) = torch.autograd.grad(loss, [delta])
        delta = _project(images, delta.detach() + alpha * torch.sign(grad), eps)
    return images + delta.detach(), loss.detach()


def pretrain_step(
    params: M.Params,
    c: ModelConfig,
    run: PretrainSettings,
    images: torch.Tensor,
    mask: PatchMask,
    attack_start: Optional[torch.Tensor],
    draw_mask: Callable[[], PatchMask],
    loss_scale: float = 1.0,
) -> PretrainStepResult:
    """Steps 1-3 for one batch with the given mask and attack start (the trainer draws them). The
    gradients are of loss * loss_scale (fp16's loss scaling; the optimiser unscales them)."""
    adversarial, attack_loss = images, None
    train_mask = mask
    if run.mode != "mae":
        if attack_start is None:
            raise ValueError(f"mode {run.mode} needs an attack start")
        adversarial, attack_loss = attack_reconstruction(params, c, run, images, mask, attack_start, draw_mask)
        if run.attack.attack_mask == "fresh":
            train_mask = draw_mask()
    vis = M.mae_input(c, adversarial, train_mask.visible_ids)
    latent, features = M.encode_visible_with_layer(
        params, c, vis, train_mask.visible_ids, run.mi.layer_block, run.mi.layer_final_norm
    )
    pred = M.decode(params, c, latent, train_mask.visible_ids, train_mask.masked_ids)
    targets = M.ordered_patches(c, images, train_mask.visible_ids, train_mask.masked_ids)
    recon = M.reconstruction_loss(pred, targets, train_mask.num_visible, run.norm_pix_loss)
    mi = mutual_information(M.patchify(adversarial, c.patch_size), features, run.mi)
    loss = recon + run.mi.lam * mi if run.mode == "mimir" and run.mi.lam > 0 else recon
    frozen_in_pretraining = M.encoder_for(c).frozen_in_pretraining
    names = [n for n in params if not frozen_in_pretraining(c, n)]
    scaled = loss * loss_scale if loss_scale != 1.0 else loss
    grads = torch.autograd.grad(scaled, [params[n] for n in names], allow_unused=True)
    named = {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, grads)}
    return PretrainStepResult(
        loss=loss.detach(),
        recon=recon.detach(),
        mi=mi.detach(),
        attack_loss=attack_loss if attack_loss is not None else recon.detach(),
        adversarial=adversarial,
        grads=named,
    )
