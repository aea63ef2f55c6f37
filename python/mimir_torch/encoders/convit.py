"""ConViT (src/engine/model/convit.ts) in PyTorch, on the workbench's names and layouts: gated positional
self-attention in blocks 0 .. local_up_to_layer-1 on the patch tokens alone (relative positions of the
given patches on the full grid), the cls token joined before block local_up_to_layer, plain MHSA after."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch

from ..config import ModelConfig
from ..model import Params, attention, drop_path_rates, layer_norm, linear
from ..rng import Rng
from .common import (
    EncoderPass,
    Spec,
    decoder_specs,
    dense,
    embed,
    embedding_specs,
    from_heads,
    head_specs,
    linear_specs,
    mlp_specs,
    norm_specs,
    pre_norm_block,
    to_heads,
)


@dataclass(frozen=True)
class ConvitEncoder:
    local_up_to_layer: int
    locality_strength: float
    qkv_bias: bool


def check_convit(c: ModelConfig, enc: ConvitEncoder) -> None:
    if not 0 <= enc.local_up_to_layer < c.depth:
        raise ValueError(
            f"ConViT localUpToLayer {enc.local_up_to_layer} must be in 0..{c.depth - 1} (depth {c.depth}): "
            "the cls token joins before that block"
        )


def _block_specs(prefix: str, c: ModelConfig, enc: ConvitEncoder, gpsa: bool) -> List[Spec]:
    d, h = c.width, c.heads
    if gpsa:
        attn = (linear_specs(f"{prefix}.attn.qk", d, 2 * d, enc.qkv_bias) + linear_specs(f"{prefix}.attn.v", d, d, enc.qkv_bias)
                + linear_specs(f"{prefix}.attn.proj", d, d) + linear_specs(f"{prefix}.attn.pos_proj", 3, h)
                + [(f"{prefix}.attn.gating_param", [h], "norm")])
    else:
        attn = linear_specs(f"{prefix}.attn.qkv", d, 3 * d, enc.qkv_bias) + linear_specs(f"{prefix}.attn.proj", d, d)
    return norm_specs(f"{prefix}.norm1", d) + attn + norm_specs(f"{prefix}.norm2", d) + mlp_specs(f"{prefix}.mlp", d, c.mlp_ratio)


def _backbone_specs(c: ModelConfig, enc: ConvitEncoder) -> List[Spec]:
    check_convit(c, enc)
    specs = embedding_specs(c)
    for i in range(c.depth):
        specs += _block_specs(f"blocks.{i}", c, enc, i < enc.local_up_to_layer)
    return specs + norm_specs("norm", c.width)


def convit_mae_param_specs(c: ModelConfig, enc: ConvitEncoder) -> List[Spec]:
    return _backbone_specs(c, enc) + decoder_specs(c)


def convit_classifier_param_specs(c: ModelConfig, enc: ConvitEncoder, outputs: int) -> List[Spec]:
    return _backbone_specs(c, enc) + head_specs(c, outputs)


def relative_positions(ids: torch.Tensor, grid: int) -> torch.Tensor:
    """ids [N, T] (patch l = row * grid + column) -> [N, T, T, 3]: (column_j - column_i, row_j - row_i, squared distance)."""
    ids = ids.long()
    col, row = ids % grid, torch.div(ids, grid, rounding_mode="floor")
    dx = col.unsqueeze(1) - col.unsqueeze(2)
    dy = row.unsqueeze(1) - row.unsqueeze(2)
    return torch.stack([dx, dy, dx * dx + dy * dy], dim=-1).float()


def gpsa(params: Params, prefix: str, x: torch.Tensor, rel: torch.Tensor, heads: int) -> torch.Tensor:
    """timm's GPSA.forward before proj: content and positional attention mixed by sigmoid(gating_param), renormalised."""
    width = x.shape[-1]
    d = width // heads
    q, k = to_heads(dense(params, f"{prefix}.qk", x), 2 * heads).split(heads, dim=1)
    patch = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d)), dim=-1)
    pos = torch.softmax(linear(params, f"{prefix}.pos_proj", rel).permute(0, 3, 1, 2), dim=-1)
    gate = torch.sigmoid(params[f"{prefix}.gating_param"]).view(1, -1, 1, 1)
    attn = (1.0 - gate) * patch + gate * pos
    attn = attn / attn.sum(dim=-1, keepdim=True)
    return from_heads(torch.matmul(attn, to_heads(dense(params, f"{prefix}.v", x), heads)))


def convit_encoder(c: ModelConfig, enc: ConvitEncoder):
    check_convit(c, enc)

    def encode(params: Params, patches: torch.Tensor, ids: Optional[torch.Tensor], drop_path: float = 0.0,
               rng: Optional[Rng] = None) -> EncoderPass:
        n, m, _ = patches.shape
        x = embed(params, c, patches, ids)
        all_ids = torch.arange(c.num_patches, device=patches.device).unsqueeze(0)
        rel = relative_positions(all_ids if ids is None else ids, c.grid).to(patches.device)
        outputs: List[torch.Tensor] = []
        for i, rate in enumerate(drop_path_rates(drop_path, c.depth)):
            prefix = f"blocks.{i}"
            if i == enc.local_up_to_layer:
                x = torch.cat([params["cls_token"].expand(n, -1, -1), x], dim=1)
            if i < enc.local_up_to_layer:
                def attend(h: torch.Tensor, prefix: str = prefix) -> torch.Tensor:
                    return linear(params, f"{prefix}.attn.proj", gpsa(params, f"{prefix}.attn", h, rel, c.heads))
            else:
                def attend(h: torch.Tensor, prefix: str = prefix) -> torch.Tensor:
                    return linear(params, f"{prefix}.attn.proj", attention(dense(params, f"{prefix}.attn.qkv", h), c.heads))
            x = pre_norm_block(params, prefix, x, attend, rate, rng)
            outputs.append(x)
        return EncoderPass(layer_norm(params, "norm", x), outputs)

    return encode
