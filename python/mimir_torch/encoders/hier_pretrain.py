"""One MIMIR pre-training step for the hierarchical encoders (pretrain_step.py's algorithm, with a mask on
the encoder's coarsest grid instead of dropped ViT tokens):

  1. delta from the uniform start in the eps-ball; `steps` signed-gradient ascent steps of size alpha on
     the reconstruction loss, projected to the eps-ball and [0, 1]. perturb 'visible' (the paper): delta
     lives on the visible cells only and the target is the clean image; 'image': delta covers the whole
     image and the adversarial image is its own target, the gradient flowing through it (authors' code);
  2. loss = recon(decoder(encoder(x + delta)), masked units) + lambda * MI(x + delta, z), z the encoder's
     features at `mi_where` (spark.MI_FEATURES; the default per encoder is in MI_DEFAULT);
  3. gradients of loss * loss_scale w.r.t. every parameter.

The model is a SparKConvNeXt or a GreenSwin: forward_loss(inputs, targets, active, norm_pix, mi_where).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..config import PretrainSettings
from ..mi import mutual_information
from .sparse_conv import active_at

# Where MI takes z by default: ConvNeXt's pooled last stage; Swin's visible last-stage tokens (the authors'
# GreenMIM code flattens those for its HSIC).
MI_DEFAULT = {"convnext": "pooled", "swin": "tokens"}


@dataclass
class HierStepResult:
    loss: torch.Tensor
    recon: torch.Tensor
    mi: torch.Tensor
    attack_loss: torch.Tensor
    adversarial: torch.Tensor  # [N, H, W, C]
    grads: Dict[str, torch.Tensor]


def visible_pixels(active: torch.Tensor, image_size: int) -> torch.Tensor:
    """[N, H, W, 1] float, 1 at the pixels of visible cells."""
    return active_at(active, image_size).permute(0, 2, 3, 1).float()


def _project(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(x + torch.clamp(delta, -eps, eps), 0.0, 1.0) - x


def attack(
    model: nn.Module, run: PretrainSettings, images: torch.Tensor, active: torch.Tensor, start: torch.Tensor,
    mi_where: str, draw_active: Callable[[], torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Step 1: (adversarial images, the attack's last reconstruction loss). `start` [N, H, W, C] in [-eps, eps]."""
    eps, alpha = run.attack.eps / 255.0, run.attack.alpha / 255.0
    visible_only = run.attack.perturb == "visible"
    if not visible_only and run.attack.perturb != "image":
        raise ValueError(f"attack.perturb must be 'visible' or 'image', got {run.attack.perturb!r}")
    keep = visible_pixels(active, images.shape[1]) if visible_only else torch.ones_like(images[..., :1])
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        delta = _project(images, start, eps) * keep
        loss = torch.zeros(())
        for _ in range(run.attack.steps):
            step_active = draw_active() if (not visible_only and run.attack.attack_mask == "fresh") else active
            delta = delta.detach().requires_grad_(True)
            adversarial = images + delta
            target = images if visible_only else adversarial
            loss, _ = model.forward_loss(adversarial, target, step_active, run.norm_pix_loss, mi_where)
            (grad,) = torch.autograd.grad(loss, [delta])
            delta = _project(images, delta.detach() + alpha * torch.sign(grad), eps) * keep
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
    return images + delta.detach(), loss.detach()


def hier_pretrain_step(
    model: nn.Module,
    run: PretrainSettings,
    images: torch.Tensor,
    active: torch.Tensor,
    attack_start: Optional[torch.Tensor],
    mi_where: str,
    draw_active: Callable[[], torch.Tensor],
    loss_scale: float = 1.0,
) -> HierStepResult:
    adversarial, attack_loss = images, None
    train_active = active
    if run.mode != "mae":
        if attack_start is None:
            raise ValueError(f"mode {run.mode} needs an attack start")
        adversarial, attack_loss = attack(model, run, images, active, attack_start, mi_where, draw_active)
        if run.attack.attack_mask == "fresh":
            train_active = draw_active()
    recon, features = model.forward_loss(adversarial, images, train_active, run.norm_pix_loss, mi_where)
    mi = mutual_information(adversarial, features, run.mi)
    loss = recon + run.mi.lam * mi if run.mode == "mimir" and run.mi.lam > 0 else recon
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss * loss_scale, [p for _, p in named], allow_unused=True)
    return HierStepResult(
        loss=loss.detach(),
        recon=recon.detach(),
        mi=mi.detach(),
        attack_loss=attack_loss if attack_loss is not None else recon.detach(),
        adversarial=adversarial,
        grads={n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(named, grads)},
    )
