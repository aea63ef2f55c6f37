"""Pieces the hierarchical encoders (ConvNeXt, Swin) share: timm's Mlp and per-sample drop path, and timm's init."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn


class Mlp(nn.Module):
    """timm's Mlp (fc1, exact GELU, fc2), so the parameter names are timm's."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """timm's stochastic depth: each sample's branch dropped with probability `rate`, kept ones scaled."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return x * x.new_empty(shape).bernoulli_(keep) / keep


def drop_path_schedule(rate: float, depths: Sequence[int]) -> List[List[float]]:
    """timm's linspace(0, rate, sum(depths)) split per stage."""
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(flat[start : start + d])
        start += d
    return out


def timm_init(module: nn.Module) -> None:
    """Truncated normal (std 0.02) weights and zero biases for convolutions and linears, as timm's
    ConvNeXt and Swin initialise them."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
