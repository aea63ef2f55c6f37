"""SparK-style masked pre-training of ConvNeXt (Tian et al. 2023): the encoder runs sparsely on the visible
cells of a mask drawn on its last stage's grid; a light densifying decoder fills the masked positions of
every stage's features with a learned mask token, projects them, and upsamples from the coarsest stage to
the first, adding each finer stage on the way, to predict the pixels of every mask unit; the loss is the
MSE on masked units (per-unit normalised targets with norm_pix_loss).

Images are the workbench's NHWC in [0, 1]; normalisation (when configured) happens inside, as for the ViT.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..masking import random_masking
from ..model import norm_pix_targets, patchify
from .hier_common import timm_init
from .convnext import ConvNeXt, LayerNorm2d
from .sparse_conv import active_at

# Where MI takes the encoder's features (issue 18): 'pooled', the last stage's features averaged over the
# visible positions [N, C]; 'tokens', the last stage's visible positions flattened [N, Lv * C] (what the
# authors' GreenMIM Swin hands their HSIC: its visible last-stage tokens, flattened).
MI_FEATURES = ("pooled", "tokens")


def mask_from_ids(visible_ids: torch.Tensor, grid: int) -> torch.Tensor:
    """Visible cell ids [N, Lv] (row-major on a grid x grid) -> active bool [N, 1, grid, grid]."""
    n = visible_ids.shape[0]
    active = torch.zeros(n, grid * grid, dtype=torch.bool, device=visible_ids.device)
    active.scatter_(1, visible_ids.long(), True)
    return active.reshape(n, 1, grid, grid)


def random_active(generator: torch.Generator, batch: int, grid: int, ratio: float) -> torch.Tensor:
    """A random mask per sample (masking.random_masking on the coarse grid) as active [N, 1, g, g]."""
    return mask_from_ids(random_masking(generator, batch, grid * grid, ratio).visible_ids, grid)


def to_model_input(images: torch.Tensor, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> torch.Tensor:
    """NHWC [0, 1] -> NCHW, (x - mean) / std per channel when given."""
    x = images.permute(0, 3, 1, 2)
    if mean is None or std is None:
        return x
    m = torch.tensor(list(mean), dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - m) / s


def pool_visible(features: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """[N, C, g, g] averaged over the visible cells -> [N, C]."""
    a = active_at(active, features.shape[-1]).to(features.dtype)
    return (features * a).sum(dim=(2, 3)) / a.sum(dim=(2, 3))


def visible_tokens(features: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """[N, C, g, g] at the visible cells, flattened per sample -> [N, Lv * C] (every sample keeps as many)."""
    keep = active_at(active, features.shape[-1])[:, 0]
    return features.permute(0, 2, 3, 1)[keep].reshape(features.shape[0], -1)


def masked_unit_loss(pred: torch.Tensor, target: torch.Tensor, active: torch.Tensor, unit: int, norm_pix: bool) -> torch.Tensor:
    """MSE over the masked units (unit x unit px) of NHWC images, each unit's target normalised with norm_pix."""
    p, t = patchify(pred, unit), patchify(target, unit)
    if norm_pix:
        t = norm_pix_targets(t)
    hidden = (~active.reshape(active.shape[0], -1)).to(p.dtype)  # [N, L], 1 where masked
    per_unit = ((p - t) ** 2).mean(dim=-1)
    return (per_unit * hidden).sum() / hidden.sum()


class UpBlock(nn.Module):
    """x2 upsampling (transposed 2x2 convolution) then a 3x3 convolution, LayerNorm2d and GELU."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_dim, out_dim, kernel_size=2, stride=2)
        self.conv = nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1)
        self.norm = LayerNorm2d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(self.conv(self.up(x))))


class SparKConvNeXt(nn.Module):
    """The sparse ConvNeXt encoder (`encoder`, timm's names) with SparK's densifying decoder."""

    def __init__(
        self,
        encoder: ConvNeXt,
        decoder_width: Optional[int] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.mean, self.std = mean, std
        dims = encoder.size.dims
        top = decoder_width or dims[-1]
        # Decoder widths halve at each upsampling, as SparK's light decoder's.
        widths = [max(top >> (len(dims) - 1 - i), 8) for i in range(len(dims))]
        self.widths = widths
        self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, d, 1, 1)) for d in dims])
        self.densify_norms = nn.ModuleList([LayerNorm2d(d) for d in dims])
        last = len(dims) - 1
        self.densify_projs = nn.ModuleList(
            [nn.Conv2d(d, w, kernel_size=1 if i == last else 3, padding=0 if i == last else 1) for i, (d, w) in enumerate(zip(dims, widths))]
        )
        self.upsample = nn.ModuleList([UpBlock(widths[i + 1], widths[i]) for i in range(last)])
        in_chans = encoder.stem[0].in_channels
        self.pred = nn.Conv2d(widths[0], encoder.size.patch_size**2 * in_chans, kernel_size=1)
        for module in (self.densify_projs, self.upsample, self.pred):
            timm_init(module)
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02)

    def mask_grid_for(self, image_size: int) -> int:
        """Mask cells per side for `image_size` px images."""
        unit = self.encoder.total_stride
        if image_size % unit != 0:
            raise ValueError(f"{image_size} px images do not split into this ConvNeXt's {unit} px mask units")
        return image_size // unit

    def encode(self, images: torch.Tensor, active: torch.Tensor) -> List[torch.Tensor]:
        """Every stage's sparse features for NHWC images in [0, 1]."""
        return self.encoder.forward_stages(to_model_input(images, self.mean, self.std), active)

    def decode(self, features: List[torch.Tensor], active: torch.Tensor) -> torch.Tensor:
        """Densify every stage, upsample from the coarsest: predicted images NHWC (normalised space)."""
        x: Optional[torch.Tensor] = None
        for i in reversed(range(len(features))):
            f = features[i]
            a = active_at(active, f.shape[-1]).to(f.dtype)
            dense = f * a + self.mask_tokens[i] * (1 - a)
            dense = self.densify_projs[i](self.densify_norms[i](dense))
            x = dense if x is None else x + dense
            if i > 0:
                x = self.upsample[i - 1](x)
        assert x is not None
        out = F.pixel_shuffle(self.pred(x), self.encoder.size.patch_size)
        return out.permute(0, 2, 3, 1)

    def reconstruct(self, inputs: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """The decoder's prediction for every pixel, NHWC in the normalised space (the previews draw it)."""
        return self.decode(self.encode(inputs, active), active)

    def mi_features(self, features: List[torch.Tensor], active: torch.Tensor, where: str) -> torch.Tensor:
        if where == "pooled":
            return pool_visible(features[-1], active)
        if where == "tokens":
            return visible_tokens(features[-1], active)
        raise ValueError(f"MI features must be one of {', '.join(MI_FEATURES)}, got {where!r}")

    def forward_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, active: torch.Tensor, norm_pix: bool, mi_where: str = "pooled"
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction loss on the masked units of `targets`, the features MI takes) for encoder input
        `inputs` (both NHWC in [0, 1]; the encoder only sees `inputs` at visible cells)."""
        features = self.encode(inputs, active)
        pred = self.decode(features, active)
        target = to_model_input(targets, self.mean, self.std).permute(0, 2, 3, 1)
        loss = masked_unit_loss(pred, target, active, self.encoder.total_stride, norm_pix)
        return loss, self.mi_features(features, active, mi_where)
