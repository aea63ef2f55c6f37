"""Preview snapshots of the fixed preview batch (src/engine/pretrain/previews.ts): clean, masked input
(masked patches grey), adversarial input, amplified perturbation, reconstruction (visible patches from
the input, masked ones predicted, norm_pix predictions mapped back with each target patch's mean and
std). The mask comes from a fixed seed (seed ^ 0x5eed), as in the tfjs engine. ConvNeXt (SparK) and Swin
(GreenMIM) draw the same five strips from their own masked autoencoders (write_hier_preview_snapshot),
their mask units being the last stage's cells."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict

import torch

from . import model as M
from .config import ModelConfig, PretrainSettings
from .encoders.hier_pretrain import attack as hier_attack, visible_pixels
from .masking import rng_masking
from .png import write_png_strip
from .pretrain_step import attack_reconstruction
from .rng import Rng

if TYPE_CHECKING:
    from .encoders.hier_dispatch import HierPretrainer


def perturbation_scale(eps255: float) -> float:
    return 0.5 / (eps255 / 255)


def write_preview_snapshot(params: M.Params, c: ModelConfig, run: PretrainSettings, seed: int, clean: torch.Tensor, directory: str) -> Dict[str, object]:
    count = clean.shape[0]
    rng = Rng(seed ^ 0x5EED)
    mask = rng_masking(rng, count, c.num_patches, run.mask_ratio).to(clean.device)
    frozen = {k: v.detach() for k, v in params.items()}
    adversarial = clean
    if run.mode != "mae":
        eps = run.attack.eps / 255
        shape = tuple(M.mae_input(c, clean, mask.visible_ids).shape) if run.attack.perturb == "visible" else tuple(clean.shape)
        generator = torch.Generator().manual_seed(rng.seed())
        start = ((torch.rand(shape, generator=generator) * 2 - 1) * eps).to(clean.device)

        def fresh():
            return rng_masking(rng, count, c.num_patches, run.mask_ratio).to(clean.device)

        adversarial, _ = attack_reconstruction(frozen, c, run, clean, mask, start, fresh)
    with torch.no_grad():
        vis = M.mae_input(c, adversarial, mask.visible_ids)
        latent = M.encode_visible(frozen, c, vis, mask.visible_ids)
        pred = M.decode(frozen, c, latent, mask.visible_ids, mask.masked_ids)
        raw = ModelConfig(**{**c.__dict__, "normalize": None})
        targets = M.ordered_patches(c, clean, mask.visible_ids, mask.masked_ids)
        if run.norm_pix_loss:
            mean = targets.mean(dim=-1, keepdim=True)
            std = torch.sqrt(targets.var(dim=-1, keepdim=True, unbiased=True) + 1e-6)
            pred = pred * std + mean
        n, l, k = pred.shape
        is_masked = torch.cat([torch.zeros(n, mask.num_visible, 1), torch.ones(n, l - mask.num_visible, 1)], dim=1).to(clean.device)
        ordered_adv = M.ordered_patches(raw, adversarial, mask.visible_ids, mask.masked_ids)
        ordered_clean = M.ordered_patches(raw, clean, mask.visible_ids, mask.masked_ids)
        order = torch.cat([mask.visible_ids, mask.masked_ids], dim=1)
        restore = torch.argsort(order, dim=1)

        def to_image(ordered: torch.Tensor) -> torch.Tensor:
            return M.unpatchify(M.gather_rows(ordered, restore), c.patch_size, c.channels)

        images = {
            "clean": clean,
            "masked": to_image(ordered_clean * (1 - is_masked) + 0.5 * is_masked),
            "adversarial": adversarial,
            "perturbation": torch.clamp((adversarial - clean) * perturbation_scale(run.attack.eps) + 0.5, 0, 1),
            "reconstruction": torch.clamp(to_image(pred * is_masked + ordered_adv * (1 - is_masked)), 0, 1),
        }
    return _write_strips(images, run, count, directory)


def _write_strips(images: Dict[str, torch.Tensor], run: PretrainSettings, count: int, directory: str) -> Dict[str, object]:
    os.makedirs(directory, exist_ok=True)
    kinds = ["clean", "masked", "reconstruction"] if run.mode == "mae" else ["clean", "masked", "adversarial", "perturbation", "reconstruction"]
    files = {}
    for kind in kinds:
        path = os.path.join(directory, f"{kind}.png")
        write_png_strip(path, images[kind].detach().cpu().numpy())
        files[kind] = path
    return {"dir": directory, "files": files, "count": count, "perturbationScale": perturbation_scale(run.attack.eps)}


def write_hier_preview_snapshot(pretrainer: "HierPretrainer", run: PretrainSettings, seed: int, clean: torch.Tensor, directory: str) -> Dict[str, object]:
    """The preview strips for a ConvNeXt or Swin pre-training: the mask drawn on the coarse grid as the run
    draws its masks (one for the batch for Swin), the adversarial input from hier_pretrain.attack, and the
    reconstruction with masked units predicted (norm_pix predictions mapped back with each target unit's mean
    and std, then out of the normalised space) and visible ones from the input."""
    count, size = clean.shape[0], clean.shape[1]
    model = pretrainer.module
    rng = Rng(seed ^ 0x5EED)
    active = pretrainer.draw_mask(rng, count, run.mask_ratio).to(clean.device)
    adversarial = clean
    if run.mode != "mae":
        eps = run.attack.eps / 255
        generator = torch.Generator().manual_seed(rng.seed())
        start = ((torch.rand(tuple(clean.shape), generator=generator) * 2 - 1) * eps).to(clean.device)
        adversarial, _ = hier_attack(model, run, clean, active, start, pretrainer.mi_where, lambda: pretrainer.draw_mask(rng, count, run.mask_ratio).to(clean.device))
    with torch.no_grad():
        pred = model.reconstruct(adversarial, active)  # NHWC, normalised space
        channels = pred.shape[-1]
        mean = torch.tensor(list(model.mean) if model.mean is not None else [0.0] * channels, dtype=pred.dtype, device=pred.device)
        std = torch.tensor(list(model.std) if model.std is not None else [1.0] * channels, dtype=pred.dtype, device=pred.device)
        if run.norm_pix_loss:
            unit = size // pretrainer.grid
            targets = M.patchify((clean - mean) / std, unit)
            unit_mean = targets.mean(dim=-1, keepdim=True)
            unit_std = torch.sqrt(targets.var(dim=-1, keepdim=True, unbiased=True) + M.NORM_PIX_EPS)
            pred = M.unpatchify(M.patchify(pred, unit) * unit_std + unit_mean, unit, channels)
        predicted = pred * std + mean
        visible = visible_pixels(active, size)
        images = {
            "clean": clean,
            "masked": clean * visible + 0.5 * (1 - visible),
            "adversarial": adversarial,
            "perturbation": torch.clamp((adversarial - clean) * perturbation_scale(run.attack.eps) + 0.5, 0, 1),
            "reconstruction": torch.clamp(predicted * (1 - visible) + adversarial * visible, 0, 1),
        }
    return _write_strips(images, run, count, directory)
