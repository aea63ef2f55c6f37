"""Pieces shared by the token encoders (src/engine/model/encoder-parts.ts): learned pos_embed [1, L, D]
without a cls row, linear layers with or without bias, pre-norm blocks with optional LayerScale, the
token-pooled classifier, the MAE pass over an encoder and TokenEncoderImpl, the encoder_for entry ConViT and
CaiT share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..model import (
    Params,
    _residual,
    decode,
    gather_rows,
    layer_norm,
    linear,
    normalize_patches,
    ordered_patches,
    patchify,
    reconstruction_loss,
    sincos_pos_embed,
)
from ..rng import Rng

Spec = Tuple[str, List[int], str]


def linear_specs(prefix: str, fan_in: int, fan_out: int, bias: bool = True) -> List[Spec]:
    specs: List[Spec] = [(f"{prefix}.weight", [fan_in, fan_out], "weight")]
    return specs + ([(f"{prefix}.bias", [fan_out], "bias")] if bias else [])


def norm_specs(prefix: str, width: int) -> List[Spec]:
    return [(f"{prefix}.weight", [width], "norm"), (f"{prefix}.bias", [width], "norm")]


def mlp_specs(prefix: str, width: int, ratio: float) -> List[Spec]:
    hidden = round(width * ratio)
    return linear_specs(f"{prefix}.fc1", width, hidden) + linear_specs(f"{prefix}.fc2", hidden, width)


def embedding_specs(c: ModelConfig) -> List[Spec]:
    return [
        ("cls_token", [1, 1, c.width], "token"),
        ("pos_embed", [1, c.num_patches, c.width], "token"),
        ("patch_embed.proj.weight", [c.patch_dim, c.width], "patch-weight"),
        ("patch_embed.proj.bias", [c.width], "bias"),
    ]


def token_head_specs(c: ModelConfig, outputs: int) -> List[Spec]:
    """timm's token-pooled head: the final norm and the linear head, fresh at fine-tuning (encoder-parts.ts tokenHeadSpecs)."""
    return norm_specs("norm", c.width) + [("head.weight", [c.width, outputs], "weight"), ("head.bias", [outputs], "bias")]


def sincos_pos_embed_init(c: ModelConfig, params: Params) -> None:
    """pos_embed to the sin-cos table without its cls row (the authors' MAE variants of ConViT and CaiT)."""
    with torch.no_grad():
        params["pos_embed"].copy_(sincos_pos_embed(c.width, c.grid)[1:].reshape(1, c.num_patches, c.width))


def dense(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """A linear layer, with its bias where the parameters have one (timm's qkv_bias)."""
    y = torch.matmul(x, params[f"{prefix}.weight"])
    bias = params.get(f"{prefix}.bias")
    return y if bias is None else y + bias


def mlp(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return linear(params, f"{prefix}.fc2", F.gelu(linear(params, f"{prefix}.fc1", x)))


def pre_norm_block(
    params: Params, prefix: str, x: torch.Tensor, attend: Callable[[torch.Tensor], torch.Tensor],
    rate: float, rng: Optional[Rng], layer_scale: bool = False,
) -> torch.Tensor:
    """x + ls1 * attend(norm1(x)), then + ls2 * mlp(norm2(x)); LayerScale's gamma_1 / gamma_2 with `layer_scale`."""
    def scaled(k: int, t: torch.Tensor) -> torch.Tensor:
        return t * params[f"{prefix}.gamma_{k}"] if layer_scale else t

    x = _residual(x, scaled(1, attend(layer_norm(params, f"{prefix}.norm1", x))), rate, rng)
    return _residual(x, scaled(2, mlp(params, f"{prefix}.mlp", layer_norm(params, f"{prefix}.norm2", x))), rate, rng)


def to_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, w = x.shape
    return x.reshape(b, t, heads, w // heads).permute(0, 2, 1, 3)


def from_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, h * d)


def embed(params: Params, c: ModelConfig, patches: torch.Tensor, ids: Optional[torch.Tensor]) -> torch.Tensor:
    """Patch embedding plus the learned position embeddings of the patches at `ids` [N, M] (None: all, in order)."""
    if patches.shape[-1] != c.patch_dim:
        raise ValueError(f"patches have {patches.shape[-1]} values, the model expects {c.patch_dim}")
    table = params["pos_embed"]
    pos = table if ids is None else table[0][ids.long()]
    return linear(params, "patch_embed.proj", normalize_patches(c, patches)) + pos


@dataclass
class EncoderPass:
    tokens: torch.Tensor
    """After the final norm, [N, 1 + M, D], cls first."""
    outputs: List[torch.Tensor]
    """Each block's output [N, T, D]."""


TokenEncoder = Callable[[Params, torch.Tensor, Optional[torch.Tensor], float, Optional[Rng]], EncoderPass]


def token_classifier_forward(encode: TokenEncoder, params: Params, c: ModelConfig, images: torch.Tensor,
                             drop_path: float = 0.0, rng: Optional[Rng] = None) -> torch.Tensor:
    """timm's global_pool='token': head(norm(tokens)[:, 0]) for NHWC images in [0, 1]."""
    tokens = encode(params, patchify(images, c.patch_size), None, drop_path, rng).tokens
    return linear(params, "head", tokens[:, 0])


def token_mae_loss(encode: TokenEncoder, params: Params, c: ModelConfig, images: torch.Tensor,
                   visible_ids: torch.Tensor, masked_ids: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
    """The MAE loss over a token encoder: latent on the visible patches, the workbench's MAE decoder and loss."""
    patches = gather_rows(patchify(images, c.patch_size), visible_ids)
    latent = encode(params, patches, visible_ids, 0.0, None).tokens
    pred = decode(params, c, latent, visible_ids, masked_ids)
    return reconstruction_loss(pred, ordered_patches(c, images, visible_ids, masked_ids), visible_ids.shape[1], norm_pix)


def token_encode_visible_with_layer(
    encode: TokenEncoder, params: Params, c: ModelConfig, patches: torch.Tensor, visible_ids: torch.Tensor,
    block_number: int, final_norm: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """model.encode_visible_with_layer for a token encoder (encoder-parts.ts tokenEncoderImpl's encodeVisible):
    block_number 0 ('last') with the final norm is the latent; else block k's output (counted from 1),
    through the final norm when `final_norm`."""
    if block_number > c.depth:
        raise ValueError(f"mi.layer.block {block_number} is past the encoder's {c.depth} blocks")
    run = encode(params, patches, visible_ids, 0.0, None)
    if block_number == 0 and final_norm:
        return run.tokens, run.tokens
    tapped = run.outputs[(block_number or c.depth) - 1]
    return run.tokens, (layer_norm(params, "norm", tapped) if final_norm else tapped)


class TokenEncoderImpl:
    """A token encoder (ConViT, CaiT) behind encoders.encoder_for, as encoder-parts.ts tokenEncoderImpl: the
    encoder's `encoder(c)` pass, `block_specs(c)` (its specs after the embedding) and `adjust_blocks(c, params)`
    (its initial values after the sin-cos pos_embed); the embedding, the head and the MAE input are shared."""

    def __init__(self, encoder: Callable[[ModelConfig], TokenEncoder], block_specs: Callable[[ModelConfig], List[Spec]],
                 adjust_blocks: Callable[[ModelConfig, Params], None]) -> None:
        self._encoder = encoder
        self._block_specs = block_specs
        self._adjust_blocks = adjust_blocks

    def backbone_specs(self, c: ModelConfig) -> List[Spec]:
        return embedding_specs(c) + self._block_specs(c)

    def head_specs(self, c: ModelConfig, outputs: int) -> List[Spec]:
        return token_head_specs(c, outputs)

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        return gather_rows(patchify(images, c.patch_size), visible_ids)

    def frozen_in_pretraining(self, c: ModelConfig, name: str) -> bool:
        return False

    def encode_visible_with_layer(self, params: Params, c: ModelConfig, inp: torch.Tensor, visible_ids: torch.Tensor,
                                  block_number: int, final_norm: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        return token_encode_visible_with_layer(self._encoder(c), params, c, inp, visible_ids, block_number, final_norm)

    def classifier_forward(self, params: Params, c: ModelConfig, images: torch.Tensor, drop_path: float = 0.0,
                           rng: Optional[Rng] = None) -> torch.Tensor:
        return token_classifier_forward(self._encoder(c), params, c, images, drop_path, rng)

    def adjust_init(self, c: ModelConfig, params: Params) -> None:
        sincos_pos_embed_init(c, params)
        self._adjust_blocks(c, params)


def to_timm_state_dict(params: Params, specs: Sequence[Spec], c: ModelConfig) -> Dict[str, torch.Tensor]:
    """The workbench layout to timm's: linear weights [in, out] -> [out, in], the patch embedding
    [p*p*C, D] over (row, column, channel) -> the conv kernel [D, C, p, p]; every other tensor as it is."""
    out: Dict[str, torch.Tensor] = {}
    p = c.patch_size
    for name, _, role in specs:
        value = params[name].detach()
        if role == "weight":
            value = value.t()
        elif role == "patch-weight":
            value = value.reshape(p, p, c.channels, c.width).permute(3, 2, 0, 1)
        out[name] = value.contiguous()
    return out
