"""ViT + ConvStem (src/engine/model/convstem.ts; Singh et al. 2023 as the authors' MIMIR ConvBlock):
per stem width a Conv2d(3x3, stride 2, padding 1), LayerNorm over the channels (eps 1e-6) and exact
GELU, then a Conv2d(1x1) to the width. The stem runs on the whole image and masking picks its output
tokens. Kernels are stored HWIO [kh, kw, in, out] (role "conv-weight"), torch's [out, in, kh, kw]
permuted, so checkpoints load in either engine."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F

from .. import model as M
from ..config import ModelConfig
from .vit import PlainViT, Specs

STEM = "patch_embed.proj.stem"


def _layers(c: ModelConfig) -> List[Tuple[int, int, int]]:
    """(in, out, kernel) of each convolution, the 1x1 projection last."""
    layers, channels = [], c.channels
    for out in c.encoder["stemChannels"]:
        layers.append((channels, int(out), 3))
        channels = int(out)
    layers.append((channels, c.width, 1))
    return layers


def _normalize_images(c: ModelConfig, images: torch.Tensor) -> torch.Tensor:
    if c.normalize is None:
        return images
    mean = torch.tensor(list(c.normalize.mean), dtype=images.dtype, device=images.device)
    std = torch.tensor(list(c.normalize.std), dtype=images.dtype, device=images.device)
    return (images - mean) / std


def conv_stem(params: M.Params, c: ModelConfig, images: torch.Tensor) -> torch.Tensor:
    """NHWC images in [0, 1] -> tokens [N, L, width] in grid order."""
    x = _normalize_images(c, images).permute(0, 3, 1, 2)
    for i, (_, out, k) in enumerate(_layers(c)):
        weight = params[f"{STEM}.{3 * i}.weight"].permute(3, 2, 0, 1)
        x = F.conv2d(x, weight, params[f"{STEM}.{3 * i}.bias"], stride=2 if k == 3 else 1, padding=1 if k == 3 else 0)
        if k == 3:
            norm = f"{STEM}.{3 * i + 1}"
            x = F.layer_norm(x.permute(0, 2, 3, 1), (out,), params[f"{norm}.weight"], params[f"{norm}.bias"], M.LAYER_NORM_EPS)
            x = F.gelu(x).permute(0, 3, 1, 2)
    n, d = x.shape[0], x.shape[1]
    return x.permute(0, 2, 3, 1).reshape(n, -1, d)


class ConvStemEmbedding:
    def specs(self, c: ModelConfig) -> Specs:
        specs: Specs = []
        for i, (cin, cout, k) in enumerate(_layers(c)):
            specs += [(f"{STEM}.{3 * i}.weight", [k, k, cin, cout], "conv-weight"), (f"{STEM}.{3 * i}.bias", [cout], "bias")]
            if k == 3:
                specs += M._norm(f"{STEM}.{3 * i + 1}", cout)
        return specs

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        return M.patchify(images, c.patch_size)  # the stem reads the whole image

    def embed_visible(self, params: M.Params, c: ModelConfig, inp: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        if inp.shape[1] != c.num_patches:
            raise ValueError(f"the ConvStem reads every patch of the image, got {list(inp.shape)}")
        tokens = conv_stem(params, c, M.unpatchify(inp, c.patch_size, c.channels))
        return M.gather_rows(tokens, visible_ids)

    def embed_all(self, params: M.Params, c: ModelConfig, images: torch.Tensor) -> torch.Tensor:
        return conv_stem(params, c, images)

    def frozen_in_pretraining(self, c: ModelConfig, name: str) -> bool:
        return not bool(c.encoder.get("pretrainStem", True)) and name.startswith(f"{STEM}.")


CONVSTEM = PlainViT(ConvStemEmbedding())
