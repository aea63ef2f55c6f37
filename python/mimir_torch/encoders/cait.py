"""CaiT (src/engine/model/cait.ts) in PyTorch, on the workbench's names and layouts: LayerScale blocks of
talking-heads self-attention on the patch tokens, class-attention blocks updating the cls token, then
norm over cls + patches. The MAE runs the whole encoder on the visible tokens, as the authors' code does."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch

from ..config import ModelConfig
from ..model import Params, layer_norm, linear
from ..rng import Rng
from .common import (
    EncoderPass,
    Spec,
    TokenEncoderImpl,
    dense,
    embed,
    from_heads,
    linear_specs,
    mlp,
    mlp_specs,
    norm_specs,
    pre_norm_block,
    to_heads,
)


@dataclass(frozen=True)
class CaitEncoder:
    depth_token_only: int
    init_values: float
    mlp_ratio_token_only: float
    qkv_bias: bool


def cait_of(c: ModelConfig) -> CaitEncoder:
    """The model's encoder fields (src/shared/encoder-config.ts CaitEncoder, defaults as there); the
    class-attention blocks' MLP ratio is the model's (timm's mlp_ratio_token_only)."""
    e = c.encoder
    if e.get("kind") != "cait":
        raise ValueError(f"the model's encoder is {e.get('kind')}, not cait")
    return CaitEncoder(int(e.get("classAttentionBlocks", 2)), float(e.get("layerScaleInit", 1e-5)), c.mlp_ratio,
                       bool(e.get("qkvBias", True)))


def _layer_scale(prefix: str, width: int) -> List[Spec]:
    return [(f"{prefix}.gamma_1", [width], "norm"), (f"{prefix}.gamma_2", [width], "norm")]


def _block_specs(c: ModelConfig) -> List[Spec]:
    enc = cait_of(c)
    d, h = c.width, c.heads
    specs: List[Spec] = []
    for i in range(c.depth):
        p = f"blocks.{i}"
        specs += (norm_specs(f"{p}.norm1", d) + linear_specs(f"{p}.attn.qkv", d, 3 * d, enc.qkv_bias)
                  + linear_specs(f"{p}.attn.proj", d, d) + linear_specs(f"{p}.attn.proj_l", h, h)
                  + linear_specs(f"{p}.attn.proj_w", h, h) + norm_specs(f"{p}.norm2", d)
                  + mlp_specs(f"{p}.mlp", d, c.mlp_ratio) + _layer_scale(p, d))
    for j in range(enc.depth_token_only):
        p = f"blocks_token_only.{j}"
        specs += norm_specs(f"{p}.norm1", d)
        for name in ("q", "k", "v"):
            specs += linear_specs(f"{p}.attn.{name}", d, d, enc.qkv_bias)
        specs += (linear_specs(f"{p}.attn.proj", d, d) + norm_specs(f"{p}.norm2", d)
                  + mlp_specs(f"{p}.mlp", d, enc.mlp_ratio_token_only) + _layer_scale(p, d))
    return specs


def talking_heads(params: Params, prefix: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """timm's TalkingHeadAttn before proj: scores mixed across heads by proj_l, softmax, mixed again by proj_w."""
    d = x.shape[-1] // heads
    q, k, v = to_heads(dense(params, f"{prefix}.qkv", x), 3 * heads).split(heads, dim=1)
    scores = torch.matmul(q * (1.0 / math.sqrt(d)), k.transpose(-2, -1))
    mixed = linear(params, f"{prefix}.proj_l", scores.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    attn = linear(params, f"{prefix}.proj_w", torch.softmax(mixed, dim=-1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return from_heads(torch.matmul(attn, v))


def class_attention_block(params: Params, prefix: str, x: torch.Tensor, cls: torch.Tensor, heads: int) -> torch.Tensor:
    """timm's LayerScaleBlockClassAttn: cls [N, 1, D] attends to cls + x; only cls is updated."""
    u = layer_norm(params, f"{prefix}.norm1", torch.cat([cls, x], dim=1))
    d = u.shape[-1] // heads
    q = to_heads(dense(params, f"{prefix}.attn.q", u[:, :1]), heads)
    k = to_heads(dense(params, f"{prefix}.attn.k", u), heads)
    v = to_heads(dense(params, f"{prefix}.attn.v", u), heads)
    attn = torch.softmax(torch.matmul(q * (1.0 / math.sqrt(d)), k.transpose(-2, -1)), dim=-1)
    cls = cls + params[f"{prefix}.gamma_1"] * linear(params, f"{prefix}.attn.proj", from_heads(torch.matmul(attn, v)))
    return cls + params[f"{prefix}.gamma_2"] * mlp(params, f"{prefix}.mlp", layer_norm(params, f"{prefix}.norm2", cls))


def cait_encoder(c: ModelConfig):
    enc = cait_of(c)
    if enc.depth_token_only < 1:
        raise ValueError(f"CaiT depthTokenOnly must be a positive integer, got {enc.depth_token_only}")

    def encode(params: Params, patches: torch.Tensor, ids: Optional[torch.Tensor], drop_path: float = 0.0,
               rng: Optional[Rng] = None) -> EncoderPass:
        n = patches.shape[0]
        x = embed(params, c, patches, ids)
        outputs: List[torch.Tensor] = []
        for i in range(c.depth):
            prefix = f"blocks.{i}"

            def attend(h: torch.Tensor, prefix: str = prefix) -> torch.Tensor:
                return linear(params, f"{prefix}.attn.proj", talking_heads(params, f"{prefix}.attn", h, c.heads))

            # timm's CaiT: one drop-path rate for every self-attention block.
            x = pre_norm_block(params, prefix, x, attend, drop_path, rng, layer_scale=True)
            outputs.append(x)
        cls = params["cls_token"].expand(n, -1, -1)
        for j in range(enc.depth_token_only):
            cls = class_attention_block(params, f"blocks_token_only.{j}", x, cls, c.heads)
        return EncoderPass(layer_norm(params, "norm", torch.cat([cls, x], dim=1)), outputs)

    return encode


def _adjust_blocks(c: ModelConfig, params: Params) -> None:
    """Every LayerScale gamma layerScaleInit, as cait.ts."""
    enc = cait_of(c)
    with torch.no_grad():
        for name, value in params.items():
            if name.endswith(".gamma_1") or name.endswith(".gamma_2"):
                value.fill_(enc.init_values)


# CaiT behind encoders.encoder_for (the tfjs twin: cait.ts caitEncoderImpl).
CAIT = TokenEncoderImpl(cait_encoder, _block_specs, _adjust_blocks)
