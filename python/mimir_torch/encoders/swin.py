"""Swin Transformer (Liu et al. 2021) with timm 0.9's module names (timm.models.swin_transformer
.SwinTransformer: NHWC stages, downsampling at the start of stages 2.., head.fc), so its state dict
loads into timm with strict=True. The dense forward is timm's shifted-window attention (fine-tuning,
evaluation); forward_visible runs the encoder on the visible tokens of a mask on the last stage's grid
with group window attention (GreenMIM, group_window_attention.py) for masked pre-training.

Inputs are NCHW, already normalised (green.py's wrapper takes the workbench's NHWC images in [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .hier_common import Mlp, drop_path, drop_path_schedule, timm_init
from .group_window_attention import GroupLayout, WindowAttention, group_layout
from .sparse_conv import active_at


@dataclass(frozen=True)
class SwinSize:
    img_size: int
    patch_size: int
    embed_dim: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    window_size: int


# timm's swin_base_patch4_window7_224, and a micro size for 32 px images (stages at 16, 8, 4 tokens a side).
SWIN_SIZES = {
    "swin-b": SwinSize(224, 4, 128, (2, 2, 18, 2), (4, 8, 16, 32), 7),
    "swin-micro": SwinSize(32, 2, 16, (2, 2, 2), (1, 2, 4), 4),
}


def window_and_shift(resolution: int, window: int, block: int) -> Tuple[int, int]:
    """timm's _calc_window_shift: the window shrinks to a smaller map, which then is never shifted."""
    ws = resolution if resolution <= window else window
    shift = 0 if block % 2 == 0 or resolution <= ws else window // 2
    return ws, shift


def shifted_window_mask(size: int, ws: int, shift: int) -> Optional[torch.Tensor]:
    """timm's attn_mask [nW, ws*ws, ws*ws]: 0 within one shift region, -100 across."""
    if shift == 0:
        return None
    img = torch.zeros(size, size)
    cnt = 0
    for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[h, w] = cnt
            cnt += 1
    windows = img.reshape(size // ws, ws, size // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, resolution: int, window: int, block: int, drop_path_rate: float) -> None:
        super().__init__()
        self.resolution = resolution
        self.window_size, self.shift_size = window_and_shift(resolution, window, block)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, self.window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path_rate = drop_path_rate
        mask = shifted_window_mask(resolution, self.window_size, self.shift_size)
        self.register_buffer("attn_mask", mask, persistent=False)

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws, s = self.window_size, self.shift_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        out = self.attn(windows, self.attn_mask)
        out = out.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return torch.roll(out, shifts=(s, s), dims=(1, 2)) if s else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense: x [B, H, W, C]."""
        x = x + drop_path(self._window_attention(self.norm1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)

    def layout(self, coords: torch.Tensor) -> GroupLayout:
        return group_layout(coords, self.resolution, self.window_size, self.shift_size)

    def forward_groups(self, x: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
        """Visible tokens only: x [B, T, C] with the layout of their coordinates."""
        x = x + drop_path(self.attn.forward_groups(self.norm1(x), layout), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class PatchMerging(nn.Module):
    """timm 0.9's PatchMerging: each 2x2 neighbourhood's channels concatenated, LayerNorm, linear (no bias)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, dim: int, out_dim: int, resolution: int, depth: int, heads: int, window: int, rates: List[float], downsample: bool) -> None:
        super().__init__()
        self.downsample: nn.Module = PatchMerging(dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[SwinBlock(out_dim, heads, resolution, window, i, rates[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class Head(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        # num_classes 0: features only, as timm (no head.fc in the state dict)
        self.fc: nn.Module = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2)))


class SwinTransformer(nn.Module):
    def __init__(self, size: SwinSize, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if len(size.depths) != len(size.num_heads):
            raise ValueError(f"Swin: {len(size.depths)} stage depths but {len(size.num_heads)} head counts")
        grid = size.img_size // size.patch_size
        if size.img_size % size.patch_size or grid % 2 ** (len(size.depths) - 1):
            raise ValueError(f"Swin: {size.img_size} px images with {size.patch_size} px patches do not halve {len(size.depths) - 1} times")
        self.size = size
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.patch_embed = PatchEmbed(size.patch_size, in_chans, size.embed_dim)
        rates = drop_path_schedule(drop_path_rate, size.depths)
        stages, dim = [], size.embed_dim
        for i, (depth, heads) in enumerate(zip(size.depths, size.num_heads)):
            out_dim = size.embed_dim * 2**i
            stages.append(SwinStage(dim, out_dim, grid >> i, depth, heads, size.window_size, rates[i], downsample=i > 0))
            dim = out_dim
        self.layers = nn.Sequential(*stages)
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = Head(dim, num_classes)
        timm_init(self)

    @property
    def total_stride(self) -> int:
        """Pixels per token of the last stage: the mask unit of masked pre-training."""
        return self.size.patch_size * 2 ** (len(self.size.depths) - 1)

    def _check(self, x: torch.Tensor) -> None:
        if list(x.shape[1:]) != [self.in_chans, self.size.img_size, self.size.img_size]:
            raise ValueError(f"this Swin takes [N, {self.in_chans}, {self.size.img_size}, {self.size.img_size}] images, got {list(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Dense: [B, h, w, C] after the final norm."""
        self._check(x)
        return self.norm(self.layers(self.patch_embed(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def forward_visible(self, x: torch.Tensor, active: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The encoder on the visible tokens of `active` (bool [1 or B, 1, g, g] on the last stage's grid,
        one mask for the batch): (tokens [B, Tv, C] after the final norm, their last-stage coordinates [Tv, 2])."""
        self._check(x)
        mask = active[0]
        if active.shape[0] > 1 and not torch.equal(active, mask.expand_as(active)):
            raise ValueError("Swin's group window attention takes one mask for the whole batch (as GreenMIM); got different masks per sample")
        g = self.size.img_size // self.total_stride
        if mask.shape[-1] != g:
            raise ValueError(f"the mask's {mask.shape[-1]}x{mask.shape[-1]} grid does not match this Swin's last stage ({g}x{g})")
        dense = self.patch_embed(x)  # each patch sees only its own pixels, so masked ones cannot leak
        for i, stage in enumerate(self.layers):
            if i > 0:
                dense = stage.downsample(dense)
            keep = active_at(mask.unsqueeze(0), dense.shape[1])[0, 0]
            coords = keep.nonzero()  # row-major
            tokens = dense[:, keep]
            layouts: Dict[Tuple[int, int], GroupLayout] = {}
            for blk in stage.blocks:
                key = (blk.window_size, blk.shift_size)
                if key not in layouts:
                    layouts[key] = blk.layout(coords)
                tokens = blk.forward_groups(tokens, layouts[key])
            # Back onto the map for the next stage's merging: visible 2x2 neighbourhoods are whole cells.
            dense = tokens.new_zeros(dense.shape)
            dense[:, keep] = tokens
        return self.norm(tokens), coords

    def timm_config(self) -> Dict[str, Any]:
        s = self.size
        return {
            "architecture": "swin_transformer.SwinTransformer",
            "timm_model": "swin_base_patch4_window7_224" if s == SWIN_SIZES["swin-b"] else None,
            "model_args": {
                "img_size": s.img_size,
                "patch_size": s.patch_size,
                "in_chans": self.in_chans,
                "num_classes": self.num_classes,
                "embed_dim": s.embed_dim,
                "depths": list(s.depths),
                "num_heads": list(s.num_heads),
                "window_size": s.window_size,
            },
        }
