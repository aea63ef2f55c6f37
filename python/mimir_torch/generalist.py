"""Generalist (Wang & Wang, CVPR 2023) as src/engine/finetune/generalist.ts trains it: a natural base
learner (CE on clean images) and a robust one (CE on PGD examples made on itself) take a step each on
every batch with their own AdamW state; each has an EMA; the global model (the run's model) is an EMA
of w * EMA(robust) + (1 - w) * EMA(natural); in sync epochs both learners take the global weights after
every step. The learners live in one map with prefixed names (natural.*, robust.*, natural_ema.*,
robust_ema.*) under one AdamW, stepped once per learner: what the generalist-state checkpoints hold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import model as M
from .config import FinetuneSettings, GeneralistSettings, ModelConfig
from .finetune_step import ascend, correct_count, parameter_grads, project, smooth_targets, soft_cross_entropy
from .optim import NO_WEIGHT_DECAY_NAMES, AdamW, layerwise_lr_scale
from .precision import Scaler, rescaled
from .rng import Rng

PREFIXES = ("natural.", "robust.", "natural_ema.", "robust_ema.")


def strip_prefix(name: str) -> str:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def ema_decay_at(decay: float, s: int) -> float:
    """The EMA decay at update s (0-based): min(decay, (s + 1) / (s + 10))."""
    return min(decay, (s + 1) / (s + 10))


def robust_weight_at(g: GeneralistSettings, t: float, epochs: int) -> float:
    """The robust learner's weight at fractional epoch t: the start value until mix_ramp_start * epochs, then linear to the end value."""
    ramp_start = g.mix_ramp_start * epochs
    if t <= ramp_start or epochs <= ramp_start:
        return g.robust_weight_start
    progress = min(1.0, (t - ramp_start) / (epochs - ramp_start))
    return g.robust_weight_start + (g.robust_weight_end - g.robust_weight_start) * progress


def is_sync_epoch(g: GeneralistSettings, epoch1: int, epochs: int) -> bool:
    return epoch1 >= g.sync_start * epochs and epoch1 % g.sync_every == 0


@dataclass
class LearnerGradients:
    robust_loss: torch.Tensor
    natural_loss: torch.Tensor
    clean_correct: torch.Tensor  # the natural learner on clean images
    adv_correct: torch.Tensor  # the robust learner on its adversarial examples
    robust: Dict[str, torch.Tensor]
    natural: Dict[str, torch.Tensor]
    loss_scale: float = 1.0  # both learners' gradients are of their loss times this


class GeneralistTrainer:
    def __init__(
        self,
        global_params: M.Params,
        c: ModelConfig,
        run: FinetuneSettings,
        optimizer: Dict[str, object],
    ) -> None:
        """global_params: the run's model (updated in place); the learners start as copies of it.
        optimizer: the record's optimizer settings (beta1, beta2, weightDecay, clipGrad, layerDecay)."""
        self.global_params = global_params
        self.c = c
        self.run = run
        self.state: Dict[str, torch.Tensor] = {}
        for prefix in PREFIXES:
            trainable = not prefix.endswith("_ema.")
            for name, p in global_params.items():
                self.state[prefix + name] = p.detach().clone().requires_grad_(trainable)
        scale = layerwise_lr_scale(c.depth, float(optimizer["layerDecay"]))  # type: ignore[arg-type]
        clip = optimizer["clipGrad"]
        self.optimizer = AdamW(
            self.state,
            betas=(float(optimizer["beta1"]), float(optimizer["beta2"])),  # type: ignore[arg-type]
            weight_decay=float(optimizer["weightDecay"]),  # type: ignore[arg-type]
            max_grad_norm=None if clip is None else float(clip),  # type: ignore[arg-type]
            lr_scale=lambda name: scale(strip_prefix(name)),
            no_decay_names=tuple(prefix + n for prefix in PREFIXES for n in NO_WEIGHT_DECAY_NAMES),
        )

    def learner(self, prefix: str) -> M.Params:
        return {name: self.state[prefix + name] for name in self.global_params}

    def gradients(self, images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, start_noise: Optional[torch.Tensor], rng: Rng, loss_scale: float = 1.0) -> LearnerGradients:
        """Both learners' losses and gradients (robust first, then natural: drop path draws in that order).
        start_noise: pgd-at's uniform start offset (from the step seed's streams); loss_scale: the
        gradients are of each loss times it (fp16), the attack's input gradients are not scaled."""
        run, c = self.run, self.c
        eps, alpha = run.eps / 255.0, run.attack_alpha / 255.0
        robust, natural = self.learner("robust."), self.learner("natural.")
        frozen = {n: p.detach() for n, p in robust.items()}
        if run.random_start:
            if start_noise is None:
                raise ValueError("generalist's robust learner needs the attack's random start")
            start = project(images, images + start_noise, eps, run.threat)
        else:
            start = images.clone()
        x_adv = ascend(lambda x: M.classifier_forward(frozen, c, x), images, lambda z: soft_cross_entropy(z, targets), start, eps, alpha, run.attack_steps, run.threat)
        smoothed = smooth_targets(targets, run.label_smoothing)
        z_adv = M.classifier_forward(robust, c, x_adv, run.drop_path, rng)
        robust_loss = soft_cross_entropy(z_adv, smoothed).mean()
        robust_grads = parameter_grads(robust, robust_loss, loss_scale)
        z_clean = M.classifier_forward(natural, c, images, run.drop_path, rng)
        natural_loss = soft_cross_entropy(z_clean, smoothed).mean()
        natural_grads = parameter_grads(natural, natural_loss, loss_scale)
        return LearnerGradients(
            robust_loss.detach(),
            natural_loss.detach(),
            correct_count(z_clean.detach(), labels),
            correct_count(z_adv.detach(), labels),
            robust_grads,
            natural_grads,
            loss_scale,
        )

    def apply(
        self,
        robust_grads: Dict[str, torch.Tensor],
        natural_grads: Dict[str, torch.Tensor],
        lr: float,
        epoch: int,
        batch_index: int,
        steps_per_epoch: int,
        updates_before: int,
        scaler: Optional[Scaler] = None,
        taken_at: float = 1.0,
    ) -> Tuple[float, bool, Sequence[float], List[str]]:
        """Each learner's AdamW update (robust first), the EMA and global updates, a sync in sync epochs.
        scaler and taken_at (fp16): the gradients are of the losses times taken_at, and each learner's
        update goes through the scaler (skipped, and the scale lowered, when its gradients overflowed).
        Returns (robust weight, synced, the applied updates' pre-clipping gradient norms when clipping,
        the learners whose update was skipped)."""
        g = self.run.generalist
        norms = []
        skipped_learners: List[str] = []
        for prefix, grads in (("robust.", robust_grads), ("natural.", natural_grads)):
            if scaler is not None:
                grads = rescaled(grads, taken_at, scaler)
            norm, skipped = self.optimizer.scaled_step({prefix + n: v for n, v in grads.items()}, lr, scaler)
            if skipped:
                skipped_learners.append(prefix[:-1])
            elif norm is not None:
                norms.append(norm)
        t = epoch + (batch_index + 1) / steps_per_epoch
        weight = robust_weight_at(g, t, self.run.epochs)
        d = ema_decay_at(g.ema_decay, updates_before)
        with torch.no_grad():
            for name, p in self.global_params.items():
                r_ema, n_ema = self.state["robust_ema." + name], self.state["natural_ema." + name]
                r = r_ema * d + self.state["robust." + name] * (1 - d)
                n = n_ema * d + self.state["natural." + name] * (1 - d)
                r_ema.copy_(r)
                n_ema.copy_(n)
                p.copy_(p * d + (r * weight + n * (1 - weight)) * (1 - d))
            synced = is_sync_epoch(g, epoch + 1, self.run.epochs)
            if synced:
                for name, p in self.global_params.items():
                    self.state["natural." + name].copy_(p)
                    self.state["robust." + name].copy_(p)
        return weight, synced, norms, skipped_learners

