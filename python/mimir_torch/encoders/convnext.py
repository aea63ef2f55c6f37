"""ConvNeXt (Liu et al. 2022) with timm's module names (timm.models.convnext.ConvNeXt, conv_mlp=False),
whose blocks also run sparsely (SparK): given a coarse mask, every convolution and norm sees only the
visible positions (sparse_conv.py). Without a mask it is timm's dense ConvNeXt, so a fine-tuned or
pre-trained encoder's state dict loads into timm with strict=True.

Inputs are NCHW, already normalised (the wrappers in spark.py take the workbench's NHWC images in [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hier_common import Mlp, drop_path, drop_path_schedule, timm_init
from .sparse_conv import masked, sparse_conv, sparse_layer_norm

EPS = 1e-6


@dataclass(frozen=True)
class ConvNeXtSize:
    depths: Tuple[int, ...]
    dims: Tuple[int, ...]
    patch_size: int  # the stem's kernel and stride


# timm's convnext_tiny, and a micro size for 32 px images (stem stride 1: stages at 32, 16, 8, 4 px).
CONVNEXT_SIZES = {
    "convnext-t": ConvNeXtSize(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), patch_size=4),
    "convnext-micro": ConvNeXtSize(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), patch_size=1),
}


class LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: LayerNorm over the channels of an NCHW map; with a mask, over visible positions only."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=EPS)

    def forward(self, x: torch.Tensor, active: Optional[torch.Tensor] = None) -> torch.Tensor:  # type: ignore[override]
        if active is not None:
            return sparse_layer_norm(self, x, active)
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, ls_init_value: float, drop_path_rate: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor, active: Optional[torch.Tensor] = None) -> torch.Tensor:
        if active is None:
            y = self.norm(self.conv_dw(x).permute(0, 2, 3, 1))
        else:
            y = sparse_layer_norm(self.norm, sparse_conv(self.conv_dw, x, active).permute(0, 2, 3, 1), active, channels_last=True)
        y = (self.mlp(y) * self.gamma).permute(0, 3, 1, 2)
        if active is not None:
            y = masked(y, active)  # the MLP's biases would otherwise write into masked positions
        return x + drop_path(y, self.drop_path_rate, self.training)


class Downsample(nn.Sequential):
    """timm's stage downsampling: LayerNorm2d then a 2x2 stride-2 convolution (names downsample.0, .1)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(LayerNorm2d(in_dim), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))

    def forward(self, x: torch.Tensor, active: Optional[torch.Tensor] = None) -> torch.Tensor:  # type: ignore[override]
        norm, conv = self[0], self[1]
        if active is None:
            return conv(norm(x))
        return sparse_conv(conv, norm(x, active), active)


class ConvNeXtStage(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, depth: int, ls_init_value: float, rates: List[float]) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, out_dim) if in_dim != out_dim else nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_dim, ls_init_value, rates[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor, active: Optional[torch.Tensor] = None) -> torch.Tensor:
        if isinstance(self.downsample, Downsample):
            x = self.downsample(x, active)
        for blk in self.blocks:
            x = blk(x, active)
        return x


class NormHead(nn.Module):
    """timm's NormMlpClassifierHead as ConvNeXt uses it: average pool, LayerNorm2d, linear (head.norm, head.fc)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        # num_classes 0: features only, as timm (no head.fc in the state dict)
        self.fc: nn.Module = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.mean(dim=(2, 3), keepdim=True)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre_logits(x))


class ConvNeXt(nn.Module):
    def __init__(
        self,
        size: ConvNeXtSize,
        num_classes: int = 1000,
        in_chans: int = 3,
        ls_init_value: float = 1e-6,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(size.depths) != len(size.dims):
            raise ValueError(f"ConvNeXt: {len(size.depths)} stage depths but {len(size.dims)} stage widths")
        self.size = size
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_chans, size.dims[0], size.patch_size, stride=size.patch_size), LayerNorm2d(size.dims[0]))
        rates = drop_path_schedule(drop_path_rate, size.depths)
        stages, prev = [], size.dims[0]
        for i, (depth, dim) in enumerate(zip(size.depths, size.dims)):
            stages.append(ConvNeXtStage(prev, dim, depth, ls_init_value, rates[i]))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.head = NormHead(size.dims[-1], num_classes)
        timm_init(self)

    @property
    def total_stride(self) -> int:
        """Pixels per cell of the last stage: the mask unit of sparse pre-training."""
        return self.size.patch_size * 2 ** (len(self.size.dims) - 1)

    def forward_stages(self, x: torch.Tensor, active: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Every stage's output; with `active` (bool [N, 1, g, g] on the last stage's grid) the sparse
        forward, whose features are exactly zero at masked positions."""
        if x.shape[-1] % self.total_stride != 0 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"ConvNeXt takes square images whose side divides by {self.total_stride}, got {list(x.shape)}")
        if active is not None and active.shape[-1] * self.total_stride != x.shape[-1]:
            raise ValueError(f"the mask's {active.shape[-1]}x{active.shape[-1]} grid does not match the last stage of {x.shape[-1]} px images")
        if active is None:
            x = self.stem(x)
        else:
            x = self.stem[1](sparse_conv(self.stem[0], x, active), active)
        outputs = []
        for stage in self.stages:
            x = stage(x, active)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_stages(x)[-1])

    def timm_config(self) -> Dict[str, Any]:
        """timm's model for this size: its class (under timm.models), its registered name (convnext_tiny)
        or None, and the keyword arguments that build it."""
        s = self.size
        return {
            "architecture": "convnext.ConvNeXt",
            "timm_model": "convnext_tiny" if s == CONVNEXT_SIZES["convnext-t"] else None,
            "model_args": {
                "in_chans": self.stem[0].in_channels,
                "num_classes": self.num_classes,
                "depths": list(s.depths),
                "dims": list(s.dims),
                "patch_size": s.patch_size,
            },
        }
