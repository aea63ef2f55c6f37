"""The ViT encoder around a token embedding (src/engine/model/vit.ts): the plain ViT's linear patch
embedding here, a ConvStem in convstem.py. Both share cls_token, blocks.{i}, the MAE's `norm`,
fc_norm and head (timm's VisionTransformer with global_pool='avg' and fc_norm)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from .. import model as M
from ..config import ModelConfig
from ..rng import Rng

Specs = List[Tuple[str, List[int], str]]


class PatchEmbedding:
    """The ViT's patch embedding: a linear map [p*p*C, D] over each patch (normalised first when configured)."""

    def specs(self, c: ModelConfig) -> Specs:
        return [("patch_embed.proj.weight", [c.patch_dim, c.width], "patch-weight"), ("patch_embed.proj.bias", [c.width], "bias")]

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        return M.gather_rows(M.patchify(images, c.patch_size), visible_ids)

    def _linear(self, params: M.Params, c: ModelConfig, patches: torch.Tensor) -> torch.Tensor:
        if patches.shape[-1] != c.patch_dim:
            raise ValueError(f"patches have {patches.shape[-1]} values, the model expects {c.patch_dim}")
        return M.linear(params, "patch_embed.proj", M.normalize_patches(c, patches))

    def embed_visible(self, params: M.Params, c: ModelConfig, inp: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        return self._linear(params, c, inp)

    def embed_all(self, params: M.Params, c: ModelConfig, images: torch.Tensor) -> torch.Tensor:
        return self._linear(params, c, M.patchify(images, c.patch_size))

    def frozen_in_pretraining(self, c: ModelConfig, name: str) -> bool:
        return False


def avg_pool_head_specs(c: ModelConfig, outputs: int) -> Specs:
    return M._norm("fc_norm", c.width) + [("head.weight", [c.width, outputs], "weight"), ("head.bias", [outputs], "bias")]


def _with_cls(params: M.Params, tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([params["cls_token"].expand(tokens.shape[0], -1, -1), tokens], dim=1)


class PlainViT:
    """cls token, sin-cos positions, pre-norm blocks, mean-pooled patch tokens, over `embedding`."""

    def __init__(self, embedding) -> None:  # noqa: ANN001 (PatchEmbedding or ConvStemEmbedding)
        self.embedding = embedding

    def backbone_specs(self, c: ModelConfig) -> Specs:
        specs: Specs = [("cls_token", [1, 1, c.width], "token")] + self.embedding.specs(c)
        for i in range(c.depth):
            specs += M._block(f"blocks.{i}", c.width, c.mlp_ratio)
        return specs

    def head_specs(self, c: ModelConfig, outputs: int) -> Specs:
        return avg_pool_head_specs(c, outputs)

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding.mae_input(c, images, visible_ids)

    def frozen_in_pretraining(self, c: ModelConfig, name: str) -> bool:
        return self.embedding.frozen_in_pretraining(c, name)

    def encode_visible_with_layer(
        self, params: M.Params, c: ModelConfig, inp: torch.Tensor, visible_ids: torch.Tensor, block_number: int, final_norm: bool
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        table = M.sincos_pos_embed(c.width, c.grid).to(inp.device)
        pos = table[visible_ids.long() + 1]
        tokens = _with_cls(params, self.embedding.embed_visible(params, c, inp, visible_ids) + pos)
        outputs: List[torch.Tensor] = []
        latent = M.layer_norm(params, "norm", M.stack(params, "blocks", c.depth, tokens, c.heads, outputs=outputs))
        tapped = outputs[(block_number or c.depth) - 1]
        if tapped is outputs[-1] and final_norm:
            return latent, latent
        return latent, (M.layer_norm(params, "norm", tapped) if final_norm else tapped)

    def classifier_forward(
        self, params: M.Params, c: ModelConfig, images: torch.Tensor, drop_path: float = 0.0, rng: Optional[Rng] = None
    ) -> torch.Tensor:
        table = M.sincos_pos_embed(c.width, c.grid).to(images.device)
        tokens = _with_cls(params, self.embedding.embed_all(params, c, images) + table[1:])
        out = M.stack(params, "blocks", c.depth, tokens, c.heads, drop_path, rng)
        return M.linear(params, "head", M.layer_norm(params, "fc_norm", out[:, 1:, :].mean(dim=1)))


VIT = PlainViT(PatchEmbedding())
