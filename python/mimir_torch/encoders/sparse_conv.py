"""SparK-style sparse convolution pieces (Tian et al. 2023) for masked pre-training of convolutional encoders.

The mask lives on the coarsest grid (one cell per final-stage position, the "mask unit") as `active`:
bool [N, 1, g, g], True where visible. Every stage sees it upsampled (nearest) to its own resolution,
so a cell is all visible or all masked at every scale. Features at masked positions are kept exactly
zero: a convolution's input is zeroed there and its output re-masked, and a norm takes its statistics
over visible positions only (masked ones are neither read nor written), so nothing of a masked
region reaches a visible one.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def active_at(active: torch.Tensor, size: int) -> torch.Tensor:
    """The coarse mask [N, 1, g, g] upsampled (nearest) to [N, 1, size, size]."""
    g = active.shape[-1]
    if active.dim() != 4 or active.shape[1] != 1 or active.shape[-2] != g:
        raise ValueError(f"the mask must be bool [N, 1, g, g], got {list(active.shape)}")
    if size % g != 0:
        raise ValueError(f"a {size}x{size} feature map does not split into the mask's {g}x{g} cells")
    s = size // g
    return active if s == 1 else active.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)


def masked(x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] with masked positions set to zero."""
    return x * active_at(active, x.shape[-1]).to(x.dtype)


def sparse_conv(conv: nn.Conv2d, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """conv on the visible positions: input zeroed where masked, output re-masked at the output's resolution."""
    return masked(conv(masked(x, active)), active)


def on_visible(x: torch.Tensor, active: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], channels_last: bool = False) -> torch.Tensor:
    """fn applied to the visible positions alone, as rows [M, C]; zeros at masked positions.
    x is [N, C, H, W], or [N, H, W, C] with channels_last."""
    size = x.shape[2] if channels_last else x.shape[-1]
    keep = active_at(active, size)[:, 0]  # [N, H, W]
    rows = x if channels_last else x.permute(0, 2, 3, 1)
    values = fn(rows[keep])
    out = values.new_zeros(rows.shape[:3] + values.shape[-1:])
    out[keep] = values
    return out if channels_last else out.permute(0, 3, 1, 2)


def sparse_layer_norm(norm: nn.LayerNorm, x: torch.Tensor, active: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """LayerNorm over channels at visible positions only (masked positions stay zero)."""
    return on_visible(x, active, lambda rows: F.layer_norm(rows, norm.normalized_shape, norm.weight, norm.bias, norm.eps), channels_last)


class SparseBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics (and running estimates) come from the visible positions only.
    Without a mask it is the plain BatchNorm2d."""

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if active is None:
            return super().forward(x)
        return on_visible(x, active, self._rows)

    def _rows(self, rows: torch.Tensor) -> torch.Tensor:
        # [M, C] through batch_norm: statistics over the M visible positions of the whole batch.
        return super().forward(rows)

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 (torch's name)
        if input.dim() not in (2, 4):
            raise ValueError(f"SparseBatchNorm2d expects [N, C, H, W] or visible rows [M, C], got {input.dim()}D")
