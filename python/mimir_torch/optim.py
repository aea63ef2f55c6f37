"""AdamW, its parameter groups, and the learning-rate schedule of src/engine/train (optimizer.ts,
schedule.ts): torch.optim.AdamW (the tfjs engine's AdamW has PyTorch's semantics; a test checks
them against each other), no weight decay on biases, rank <= 1 tensors and (in fine-tuning) the tokens, layer-wise
lr decay as a per-group lr scale, global-norm clipping as clip_grad_norm_."""
from __future__ import annotations

import math
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .precision import Scaler

NO_WEIGHT_DECAY_NAMES = ("cls_token", "mask_token", "dist_token", "pos_embed", "decoder_pos_embed")


def is_no_weight_decay(name: str, shape: Sequence[int], no_decay_names: Sequence[str] = NO_WEIGHT_DECAY_NAMES) -> bool:
    """timm's rule: rank <= 1, a bias, or a listed name. MAE's pre-training lists no names (its tokens decay)."""
    return len(shape) <= 1 or name.endswith(".bias") or name in no_decay_names


def scaled_learning_rate(base_lr: float, batch_size: int) -> float:
    return base_lr * batch_size / 256


def learning_rate_at(lr: float, min_lr: float, warmup_epochs: float, epochs: float, epoch: float) -> float:
    """Linear warm-up to lr, then a half-cycle cosine to min_lr, at a fractional epoch."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    if epochs <= warmup_epochs:
        return lr
    progress = min(1.0, (epoch - warmup_epochs) / (epochs - warmup_epochs))
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def layer_id_for_lr_decay(name: str, depth: int) -> int:
    if name in ("cls_token", "pos_embed", "mask_token") or name.startswith("patch_embed"):
        return 0
    match = re.match(r"^blocks\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return depth + 1


def layerwise_lr_scale(depth: int, decay: float) -> Callable[[str], float]:
    return lambda name: decay ** (depth + 1 - layer_id_for_lr_decay(name, depth))


class AdamW:
    """torch.optim.AdamW over named parameters, one group per (weight decay, lr scale)."""

    def __init__(
        self,
        params: Dict[str, torch.Tensor],
        betas: Tuple[float, float],
        weight_decay: float,
        max_grad_norm: Optional[float] = None,
        lr_scale: Optional[Callable[[str], float]] = None,
        eps: float = 1e-8,
        no_decay_names: Sequence[str] = NO_WEIGHT_DECAY_NAMES,
    ) -> None:
        self.names = list(params)
        self.params = params
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        groups: Dict[Tuple[float, float], List[torch.Tensor]] = {}
        for name, p in params.items():
            decay = 0.0 if weight_decay == 0 or is_no_weight_decay(name, list(p.shape), no_decay_names) else weight_decay
            scale = lr_scale(name) if lr_scale else 1.0
            groups.setdefault((decay, scale), []).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": ps, "weight_decay": decay, "lr_scale": scale} for (decay, scale), ps in groups.items()],
            lr=0.0,
            betas=betas,
            eps=eps,
        )
        self.step_count = 0

    def step(self, grads: Dict[str, torch.Tensor], lr: float) -> Optional[float]:
        """Apply gradients at the schedule's lr; returns the pre-clipping gradient norm when clipping is on."""
        norm, _ = self.scaled_step(grads, lr, None)
        return norm

    def scaled_step(self, grads: Dict[str, torch.Tensor], lr: float, scaler: Optional["Scaler"]) -> Tuple[Optional[float], bool]:
        """step() for gradients of a loss multiplied by the scaler's scale (fp16): GradScaler's recipe
        (unscale_, clip, step, update); the update is skipped when a gradient is inf or NaN, and the scaler
        then lowers its scale. Returns (pre-clipping norm, whether the update was skipped)."""
        for name in self.names:
            self.params[name].grad = grads[name].detach().clone() if name in grads else None
        scaling = scaler is not None and scaler.is_enabled()
        if scaling:
            scale_before = scaler.get_scale()
            scaler.unscale_(self.optimizer)
        norm = None
        if self.max_grad_norm is not None:
            norm = float(torch.nn.utils.clip_grad_norm_([self.params[n] for n in self.names if n in grads], self.max_grad_norm))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        skipped = False
        if scaling:
            scaler.step(self.optimizer)
            scaler.update()
            # GradScaler lowers its scale exactly when it found inf/NaN and skipped optimizer.step().
            skipped = scaler.get_scale() < scale_before
        else:
            self.optimizer.step()
        for name in self.names:
            self.params[name].grad = None
        if not skipped:
            self.step_count += 1
        return norm, skipped

    def export_state(self) -> Tuple[int, Dict[str, int], Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """(step, per-parameter steps, m, v) in the checkpoint's terms."""
        steps: Dict[str, int] = {}
        m: Dict[str, torch.Tensor] = {}
        v: Dict[str, torch.Tensor] = {}
        for name in self.names:
            state = self.optimizer.state.get(self.params[name], {})
            steps[name] = int(state["step"]) if "step" in state else 0
            m[name] = state["exp_avg"].detach().clone() if "exp_avg" in state else torch.zeros_like(self.params[name])
            v[name] = state["exp_avg_sq"].detach().clone() if "exp_avg_sq" in state else torch.zeros_like(self.params[name])
        return self.step_count, steps, m, v

    def import_state(self, step: int, param_steps: Dict[str, int], m: Dict[str, torch.Tensor], v: Dict[str, torch.Tensor]) -> None:
        for name in self.names:
            p = self.params[name]
            if name not in m or name not in v:
                raise ValueError(f'optimizer state: no exp_avg / exp_avg_sq for parameter "{name}"')
            if m[name].numel() != p.numel() or v[name].numel() != p.numel():
                raise ValueError(f'optimizer state: moments of "{name}" do not match its {p.numel()} values')
            t = param_steps.get(name, step)
            if t > 0:
                self.optimizer.state[p] = {
                    "step": torch.tensor(float(t)),
                    "exp_avg": m[name].reshape(p.shape).to(p.device, p.dtype).clone(),
                    "exp_avg_sq": v[name].reshape(p.shape).to(p.device, p.dtype).clone(),
                }
        self.step_count = step
