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
    TokenEncoderImpl,
    dense,
    embed,
    from_heads,
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


def convit_of(c: ModelConfig) -> ConvitEncoder:
    """The model's encoder fields (src/shared/encoder-config.ts ConvitEncoder, defaults as there)."""
    e = c.encoder
    if e.get("kind") != "convit":
        raise ValueError(f"the model's encoder is {e.get('kind')}, not convit")
    enc = ConvitEncoder(int(e["localUpToLayer"]), float(e.get("localityStrength", 1.0)), bool(e.get("qkvBias", False)))
    check_convit(c, enc)
    return enc


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


def _all_block_specs(c: ModelConfig) -> List[Spec]:
    enc = convit_of(c)
    specs: List[Spec] = []
    for i in range(c.depth):
        specs += _block_specs(f"blocks.{i}", c, enc, i < enc.local_up_to_layer)
    return specs


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


def local_init(pos_weight: torch.Tensor, heads: int, locality_strength: float) -> None:
    """timm's GPSA.local_init of pos_proj on the workbench layout [3, heads], in place (gpsa.ts localInit)."""
    kernel = int(heads ** 0.5)
    center = (kernel - 1) / 2 if kernel % 2 == 0 else kernel // 2
    for h1 in range(kernel):
        for h2 in range(kernel):
            head = h1 + kernel * h2
            pos_weight[2, head] = -1
            pos_weight[1, head] = 2 * (h1 - center)
            pos_weight[0, head] = 2 * (h2 - center)
    pos_weight.mul_(locality_strength)


def convit_encoder(c: ModelConfig):
    enc = convit_of(c)

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


def _adjust_blocks(c: ModelConfig, params: Params) -> None:
    """timm's GPSA local_init (v the identity) and gating_param 1, as convit.ts."""
    enc = convit_of(c)
    with torch.no_grad():
        for i in range(enc.local_up_to_layer):
            prefix = f"blocks.{i}.attn"
            local_init(params[f"{prefix}.pos_proj.weight"], c.heads, enc.locality_strength)
            params[f"{prefix}.v.weight"].copy_(torch.eye(c.width))
            params[f"{prefix}.gating_param"].fill_(1.0)


# ConViT behind encoders.encoder_for (the tfjs twin: convit.ts convitEncoderImpl).
CONVIT = TokenEncoderImpl(convit_encoder, _all_block_specs, _adjust_blocks)
