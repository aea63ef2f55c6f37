"""Mixed precision on CUDA: bf16 autocast where the GPU supports it, else fp16 autocast with dynamic
loss scaling (torch.cuda.amp.GradScaler); fp32 on request and always on the CPU.

fp16 needs the loss scaled before the gradients are taken: the pre-training and fine-tuning steps
(and generalist's learners) take the scaler's current scale as their loss_scale, and the optimiser's
scaled_step unscales, skips an overflowed update and lowers the scale."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Protocol

import torch

from .config import ConfigError

CHOICES = ("auto", "fp32", "bf16", "fp16")


def choose_precision(choice: str, device_type: str, bf16_supported: bool) -> str:
    """'fp32', 'bf16' or 'fp16' for a --precision choice on a device. Raises ConfigError for a choice
    the device cannot run."""
    if choice not in CHOICES:
        raise ConfigError(f"--precision {choice!r}: choose one of {', '.join(CHOICES)}")
    if choice == "fp32":
        return "fp32"
    if device_type != "cuda":
        if choice == "auto":
            return "fp32"
        raise ConfigError(f"--precision {choice} needs a CUDA device; this run is on the {device_type}: use --precision fp32 (or auto)")
    if choice == "bf16" and not bf16_supported:
        raise ConfigError("--precision bf16: this GPU does not support bfloat16; use --precision fp16 or fp32")
    if choice == "auto":
        return "bf16" if bf16_supported else "fp16"
    return choice


class Scaler(Protocol):
    """What the optimiser uses of torch.cuda.amp.GradScaler."""

    def is_enabled(self) -> bool: ...

    def get_scale(self) -> float: ...

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None: ...

    def step(self, optimizer: torch.optim.Optimizer) -> Optional[float]: ...

    def update(self) -> None: ...


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    scaler: Scaler

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def loss_scale(self) -> float:
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0


def rescaled(grads: Dict[str, torch.Tensor], taken_at: float, scaler: Scaler) -> Dict[str, torch.Tensor]:
    """Gradients taken at loss scale `taken_at`, brought to the scaler's current scale: generalist steps
    its two learners one after the other, and an overflow in the first lowers the scale the second's
    gradients will be unscaled by. GradScaler's scales are powers of two, so the factor is exact."""
    now = float(scaler.get_scale()) if scaler.is_enabled() else 1.0
    if now == taken_at:
        return grads
    return {k: g * (now / taken_at) for k, g in grads.items()}


def overflow_message(step: int, precision: Precision, update: str) -> str:
    """The run's warn log for an update GradScaler skipped; `update`: whose ("this", "the robust learner's")."""
    return f"step {step}: fp16 gradients overflowed (inf or NaN); GradScaler skipped {update} update and lowered the loss scale to {precision.loss_scale():g}."


def make_precision(choice: str, device: torch.device) -> Precision:
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    name = choose_precision(choice, device.type, bf16)
    # GradScaler(enabled=False) passes every call through: the step is the plain optimiser step.
    return Precision(name, torch.cuda.amp.GradScaler(enabled=name == "fp16"))
