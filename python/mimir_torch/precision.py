"""Mixed precision on CUDA: bf16 autocast where the GPU supports it, else fp16 autocast with dynamic
loss scaling (torch.cuda.amp.GradScaler); fp32 on request and always on the CPU.

fp16 needs the loss scaled before the gradients are taken. The pre-training step takes the scale
(pretrain_step's loss_scale); the fine-tuning step takes its gradients without one, so fine-tuning
runs bf16 or fp32 only: --precision fp16 is refused for it and auto on a GPU without bf16 is fp32
(said in the run's log)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import torch

from .config import ConfigError

CHOICES = ("auto", "fp32", "bf16", "fp16")


def choose_precision(choice: str, device_type: str, bf16_supported: bool, loss_scaling: bool) -> str:
    """'fp32', 'bf16' or 'fp16' for a --precision choice on a device; `loss_scaling`: whether the run's
    step can scale its loss (fp16 needs it). Raises ConfigError for a choice the device cannot run."""
    if choice not in CHOICES:
        raise ConfigError(f"--precision {choice!r}: choose one of {', '.join(CHOICES)}")
    if choice == "fp32":
        return "fp32"
    if device_type != "cuda":
        if choice == "auto":
            return "fp32"
        raise ConfigError(f"--precision {choice} needs a CUDA device; this run is on the {device_type}: use --precision fp32 (or auto)")
    if choice == "bf16" and not bf16_supported:
        raise ConfigError("--precision bf16: this GPU does not support bfloat16; use --precision fp16 (pre-training) or fp32")
    if choice == "fp16" and not loss_scaling:
        raise ConfigError("--precision fp16 is for pre-training on the PyTorch engine (fine-tuning takes no loss scale yet): use bf16 or fp32")
    if choice == "auto":
        if bf16_supported:
            return "bf16"
        return "fp16" if loss_scaling else "fp32"
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
    note: Optional[str] = None  # why auto chose less than the GPU could do, for the run's log

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def loss_scale(self) -> float:
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0


def make_precision(choice: str, device: torch.device, loss_scaling: bool) -> Precision:
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    name = choose_precision(choice, device.type, bf16, loss_scaling)
    note = None
    if choice == "auto" and device.type == "cuda" and name == "fp32":
        note = "precision fp32: this GPU has no bfloat16, and fp16 (which needs loss scaling) is for pre-training only on this engine"
    # GradScaler(enabled=False) passes every call through: the step is the plain optimiser step.
    return Precision(name, torch.cuda.amp.GradScaler(enabled=name == "fp16"), note)
