"""ConvNeXt and Swin behind the engine's encoder dispatch (encoders/__init__.py): the classifier side
(parameter specs with init roles, classifier_forward) for fine-tuning and evaluation on parameter dicts.

The model config's encoder fields give the size: ConvNeXt {depths, dims}, stem stride = patchSize;
Swin {depths, stageHeads, windowSize}, patch embedding patchSize, embed dim = width.
Init roles: every weight (linear, convolution, Swin's relative position table) "token", i.e. N(0, 0.02)
(timm initialises these encoders' weights with trunc_normal(std=0.02), truncated at +-2, i.e. never);
ConvNeXt's layer scales "layer-scale" (1e-6, timm's ls_init_value); the classifier's weight "head-weight"
(N(0, headInitStd)). Drop path draws come from torch's generator (not the workbench Rng): these
encoders have no tfjs twin whose draws they would have to repeat.

Masked pre-training does not go through the ViT MAE path (mae_input / encode_visible_with_layer):
SparK's and GreenMIM's decoders are their own (spark.py, green.py, hier_pretrain.py).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import torch
import torch.nn as nn
from torch.nn.utils.stateless import functional_call

from ..config import ConfigError, ModelConfig
from ..rng import Rng
from .convnext import ConvNeXt, ConvNeXtSize
from .spark import to_model_input
from .swin import SwinSize, SwinTransformer

Specs = List[Tuple[str, List[int], str]]


def _ints(c: ModelConfig, key: str) -> Tuple[int, ...]:
    value = c.encoder.get(key)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise ConfigError(f"model.encoder.{key} must be a list of positive integers, got {value!r}")
    return tuple(value)


def convnext_size(c: ModelConfig) -> ConvNeXtSize:
    size = ConvNeXtSize(depths=_ints(c, "depths"), dims=_ints(c, "dims"), patch_size=c.patch_size)
    stride = c.patch_size * 2 ** (len(size.dims) - 1)
    if c.image_size % stride:
        raise ConfigError(f"model: {c.image_size} px images do not divide into this ConvNeXt's {stride} px last-stage cells")
    return size


def swin_size(c: ModelConfig) -> SwinSize:
    return SwinSize(
        img_size=c.image_size,
        patch_size=c.patch_size,
        embed_dim=c.width,
        depths=_ints(c, "depths"),
        num_heads=_ints(c, "stageHeads"),
        window_size=int(c.encoder.get("windowSize", 7)),
    )


def _role(name: str, p: torch.Tensor, norm_weights: Set[str]) -> str:
    if name == "head.fc.weight":
        return "head-weight"
    if name.endswith("gamma"):
        return "layer-scale"
    if p.dim() >= 2:
        return "token"
    return "norm" if name in norm_weights else "bias"


class HierarchicalEncoder:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._modules: Dict[Tuple[object, ...], nn.Module] = {}

    def module(self, c: ModelConfig, outputs: int, drop_path: float = 0.0) -> nn.Module:
        key = (repr(sorted(c.encoder.items())), c.image_size, c.patch_size, c.width, c.channels, outputs, drop_path)
        if key not in self._modules:
            with torch.random.fork_rng():  # building initialises weights: keep the caller's random stream
                if self.kind == "convnext":
                    m: nn.Module = ConvNeXt(convnext_size(c), num_classes=outputs, in_chans=c.channels, drop_path_rate=drop_path)
                else:
                    m = SwinTransformer(swin_size(c), num_classes=outputs, in_chans=c.channels, drop_path_rate=drop_path)
            self._modules[key] = m
        return self._modules[key]

    def _specs(self, c: ModelConfig, outputs: int) -> Specs:
        module = self.module(c, outputs)
        norm_weights = {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))}
        return [(n, list(p.shape), _role(n, p, norm_weights)) for n, p in module.named_parameters()]

    def backbone_specs(self, c: ModelConfig) -> Specs:
        return [s for s in self._specs(c, 1) if not s[0].startswith("head.")]

    def head_specs(self, c: ModelConfig, outputs: int) -> Specs:
        return [s for s in self._specs(c, outputs) if s[0].startswith("head.")]

    def classifier_forward(
        self, params: Dict[str, torch.Tensor], c: ModelConfig, images: torch.Tensor, drop_path: float = 0.0, rng: Optional[Rng] = None
    ) -> torch.Tensor:
        outputs = int(params["head.fc.weight"].shape[0])
        module = self.module(c, outputs, drop_path).train(drop_path > 0)
        norm = c.normalize
        x = to_model_input(images, norm.mean if norm else None, norm.std if norm else None)
        return functional_call(module, params, (x,))

    def frozen_in_pretraining(self, c: ModelConfig, name: str) -> bool:
        return False

    def _no_vit_mae(self) -> ConfigError:
        return ConfigError(
            f"The {self.kind} encoder pre-trains with its own masked autoencoder "
            f"({'SparK' if self.kind == 'convnext' else 'GreenMIM'}, python/mimir_torch/encoders/hier_pretrain.py), "
            "not the ViT MAE: pre-training runs of this encoder are not wired into the PyTorch engine's runs yet; "
            "fine-tune it from scratch (--scratch) or pre-train a ViT"
        )

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        raise self._no_vit_mae()

    def encode_visible_with_layer(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise self._no_vit_mae()


CONVNEXT = HierarchicalEncoder("convnext")
SWIN = HierarchicalEncoder("swin")
