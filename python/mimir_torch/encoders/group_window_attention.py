"""Window attention of Swin (timm's WindowAttention names) and GreenMIM's group window attention
(Huang et al. 2022) for masked pre-training.

Group window attention works on the visible tokens only. Each visible token falls in one (shifted)
window; windows are packed whole into groups of one size G (first-fit decreasing with G the largest
window's count: GreenMIM searches G with a knapsack, which only changes how much padding there is),
and attention runs per group with a mask that lets a token attend only to tokens of its own group,
window and (for shifted blocks) Swin's shift region, with the relative position bias of their
positions inside the window. With nothing masked that is exactly Swin's shifted-window attention.
The mask is shared by the batch (as GreenMIM's), so one layout serves every sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn


def relative_position_index(ws: int) -> torch.Tensor:
    """timm's [ws*ws, ws*ws] index into the (2ws-1)^2 bias table, query row, key column."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


def _region(pos: torch.Tensor, size: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's shift regions along one axis of the rolled map: [0, size-ws), [size-ws, size-shift), [size-shift, size)."""
    return (pos >= size - ws).long() + (pos >= size - shift).long()


def window_layout(coords: torch.Tensor, size: int, ws: int, shift: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For tokens at `coords` [T, 2] (row, col) of a size x size map: (window id [T], region id [T],
    position inside the window [T, 2]), all in the map rolled by -shift as Swin's shifted blocks roll it."""
    rolled = (coords - shift) % size
    per_row = size // ws
    window = (rolled[:, 0] // ws) * per_row + rolled[:, 1] // ws
    if shift > 0:
        region = _region(rolled[:, 0], size, ws, shift) * 3 + _region(rolled[:, 1], size, ws, shift)
    else:
        region = torch.zeros_like(window)
    return window, region, rolled % ws


@dataclass
class GroupLayout:
    """Visible tokens packed into groups: index [nG, G] into the token list (T = padding), allowed
    [nG, G, G] (may attend), bias_index [nG, G, G] into the bias table (0 where not allowed)."""

    index: torch.Tensor
    allowed: torch.Tensor
    bias_index: torch.Tensor
    group_of: torch.Tensor  # [T] group of each token

    @property
    def group_size(self) -> int:
        return int(self.index.shape[1])


def group_layout(coords: torch.Tensor, size: int, ws: int, shift: int) -> GroupLayout:
    """Pack the windows of the visible tokens at `coords` [T, 2] into equal-size groups."""
    t = coords.shape[0]
    if t == 0:
        raise ValueError("group window attention needs at least one visible token")
    window, region, inner = window_layout(coords, size, ws, shift)
    members: dict = {}
    for token, w in enumerate(window.tolist()):
        members.setdefault(w, []).append(token)
    windows = sorted(members.values(), key=lambda m: (-len(m), m[0]))
    capacity = len(windows[0])
    groups: List[List[int]] = []
    for m in windows:  # first-fit decreasing
        for g in groups:
            if len(g) + len(m) <= capacity:
                g.extend(m)
                break
        else:
            groups.append(list(m))
    index = torch.full((len(groups), capacity), t, dtype=torch.long)
    group_of = torch.empty(t, dtype=torch.long)
    for gi, g in enumerate(groups):
        index[gi, : len(g)] = torch.tensor(g)
        group_of[torch.tensor(g)] = gi
    real = index < t
    safe = torch.where(real, index, torch.zeros_like(index))
    w, r, p = window[safe], region[safe], inner[safe]
    allowed = (w[:, :, None] == w[:, None, :]) & (r[:, :, None] == r[:, None, :]) & real[:, :, None] & real[:, None, :]
    allowed |= torch.eye(capacity, dtype=torch.bool).expand_as(allowed)  # a padding token attends to itself
    rel = p[:, :, None, :] - p[:, None, :, :] + (ws - 1)
    bias_index = torch.where(allowed, rel[..., 0] * (2 * ws - 1) + rel[..., 1], torch.zeros_like(rel[..., 0]))
    return GroupLayout(index=index.to(coords.device), allowed=allowed.to(coords.device), bias_index=bias_index.to(coords.device), group_of=group_of)


class WindowAttention(nn.Module):
    """timm's WindowAttention parameters (relative_position_bias_table, qkv, proj)."""

    def __init__(self, dim: int, heads: int, window_size: int) -> None:
        super().__init__()
        self.heads = heads
        self.window_size = window_size
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _attend(self, x: torch.Tensor, nw: int, bias: torch.Tensor, additive: Optional[torch.Tensor]) -> torch.Tensor:
        """x [B*nW, N, C], windows of one image consecutive; bias [nW or 1, heads, N, N]; additive [nW, N, N] or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.view(bw // nw, nw, self.heads, n, n) + bias.unsqueeze(0)
        if additive is not None:
            attn = attn + additive.unsqueeze(1).unsqueeze(0)
        attn = attn.view(bw, self.heads, n, n).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))

    def forward(self, windows: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Plain (shifted-)window attention, as timm's: windows [B*nW, ws*ws, C], mask [nW, N, N] (0 / -100)."""
        bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1).unsqueeze(0)
        return self._attend(windows, mask.shape[0] if mask is not None else 1, bias, mask)

    def forward_groups(self, tokens: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
        """Group window attention over the visible tokens [B, T, C] (GreenMIM) -> [B, T, C]."""
        b, t, c = tokens.shape
        padded = torch.cat([tokens, tokens.new_zeros(b, 1, c)], dim=1)
        groups = padded[:, layout.index.reshape(-1)].reshape(-1, layout.group_size, c)  # [B*nG, G, C]
        bias = self.relative_position_bias_table[layout.bias_index].permute(0, 3, 1, 2)  # [nG, heads, G, G]
        blocked = torch.zeros(layout.allowed.shape, dtype=tokens.dtype, device=tokens.device)
        blocked = blocked.masked_fill(~layout.allowed, float("-inf"))
        out = self._attend(groups, layout.index.shape[0], bias, blocked).reshape(b, -1, c)
        result = tokens.new_zeros(b, t + 1, c)
        result[:, layout.index.reshape(-1)] = out
        return result[:, :t]
