"""GreenMIM-style masked pre-training of Swin (Huang et al. 2022): the encoder runs on the visible tokens
of a mask drawn on its last stage's grid (one mask for the batch) with group window attention; an MAE
decoder (ViT blocks over the last stage's grid, a learned mask token at masked cells, fixed sin-cos
positions) predicts every mask unit's pixels; the loss is the MSE on masked units."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..masking import random_masking
from ..model import sincos_pos_embed, unpatchify
from .hier_common import Mlp, timm_init
from .spark import mask_from_ids, masked_unit_loss, to_model_input
from .swin import SwinTransformer


def random_shared_active(generator: torch.Generator, batch: int, grid: int, ratio: float) -> torch.Tensor:
    """One random mask (masking.random_masking on the coarse grid) for the whole batch: [batch, 1, g, g]."""
    one = mask_from_ids(random_masking(generator, 1, grid * grid, ratio).visible_ids, grid)
    return one.expand(batch, -1, -1, -1)


class DecoderBlock(nn.Module):
    """A pre-norm ViT block (full attention) with timm's names."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class GreenSwin(nn.Module):
    """The Swin encoder (`encoder`, timm's names) with an MAE decoder over its last stage's grid."""

    def __init__(
        self,
        encoder: SwinTransformer,
        decoder_width: int = 128,
        decoder_depth: int = 1,
        decoder_heads: int = 4,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.mean, self.std = mean, std
        self.grid = encoder.size.img_size // encoder.total_stride
        unit = encoder.total_stride
        self.decoder_embed = nn.Linear(encoder.num_features, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.register_buffer("decoder_pos", sincos_pos_embed(decoder_width, self.grid)[1:].unsqueeze(0), persistent=False)
        self.decoder_blocks = nn.ModuleList([DecoderBlock(decoder_width, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_width, unit * unit * encoder.in_chans)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_pred):
            timm_init(module)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def mask_grid_for(self, image_size: int) -> int:
        if image_size != self.encoder.size.img_size:
            raise ValueError(f"this Swin takes {self.encoder.size.img_size} px images, got {image_size} px")
        return self.grid

    def _predict(self, inputs: torch.Tensor, active: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(the prediction for every pixel, NHWC in the normalised space; the visible last-stage tokens)."""
        tokens, coords = self.encoder.forward_visible(to_model_input(inputs, self.mean, self.std), active)
        b, g = tokens.shape[0], self.grid
        visible = torch.zeros(g * g, dtype=torch.bool, device=tokens.device)
        visible[coords[:, 0] * g + coords[:, 1]] = True
        embedded = tokens.new_zeros(b, g * g, self.mask_token.shape[-1])
        embedded[:, visible] = self.decoder_embed(tokens)
        x = torch.where(visible.reshape(1, -1, 1), embedded, self.mask_token) + self.decoder_pos
        for blk in self.decoder_blocks:
            x = blk(x)
        unit = self.encoder.total_stride
        return unpatchify(self.decoder_pred(self.decoder_norm(x)), unit, self.encoder.in_chans), tokens

    def reconstruct(self, inputs: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return self._predict(inputs, active)[0]

    def forward_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, active: torch.Tensor, norm_pix: bool, mi_where: str = "tokens"
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction loss on masked units, the features MI takes) for NHWC images in [0, 1]."""
        pred, tokens = self._predict(inputs, active)
        b, unit = tokens.shape[0], self.encoder.total_stride
        target = to_model_input(targets, self.mean, self.std).permute(0, 2, 3, 1)
        loss = masked_unit_loss(pred, target, active, unit, norm_pix)
        if mi_where == "tokens":
            return loss, tokens.reshape(b, -1)
        if mi_where == "pooled":
            return loss, tokens.mean(dim=1)
        raise ValueError(f"MI features must be 'pooled' or 'tokens', got {mi_where!r}")
