"""The hierarchical encoders as the engine's classifiers: a named size built into a module, and the
engine's parameter-dict API over it (parameters are a dict from timm's names to tensors, as the ViT's;
forward through torch's functional_call), for fine-tuning, evaluation and checkpoints.

Images are the workbench's NHWC in [0, 1]; normalisation (when configured) happens inside.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.utils.stateless import functional_call

from .convnext import CONVNEXT_SIZES, ConvNeXt
from .green import GreenSwin
from .spark import SparKConvNeXt, to_model_input
from .swin import SWIN_SIZES, SwinTransformer

Params = Dict[str, torch.Tensor]
HIER_SIZES = tuple(CONVNEXT_SIZES) + tuple(SWIN_SIZES)


def build_classifier(size: str, outputs: int, channels: int = 3, drop_path: float = 0.0) -> nn.Module:
    if size in CONVNEXT_SIZES:
        return ConvNeXt(CONVNEXT_SIZES[size], num_classes=outputs, in_chans=channels, drop_path_rate=drop_path)
    if size in SWIN_SIZES:
        return SwinTransformer(SWIN_SIZES[size], num_classes=outputs, in_chans=channels, drop_path_rate=drop_path)
    raise ValueError(f"no hierarchical encoder {size!r}: choose one of {', '.join(HIER_SIZES)}")


def build_pretrainer(size: str, channels: int = 3, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> nn.Module:
    """The masked autoencoder for pre-training: SparK's for ConvNeXt, GreenMIM's for Swin."""
    encoder = build_classifier(size, outputs=1, channels=channels)  # the head is unused in pre-training
    if isinstance(encoder, ConvNeXt):
        return SparKConvNeXt(encoder, mean=mean, std=std)
    assert isinstance(encoder, SwinTransformer)
    return GreenSwin(encoder, mean=mean, std=std)


def param_specs(module: nn.Module) -> List[Tuple[str, List[int]]]:
    return [(name, list(p.shape)) for name, p in module.named_parameters()]


def params_of(module: nn.Module) -> Params:
    """The module's parameters as the engine's dict (detached leaves that require grad)."""
    return {name: p.detach().clone().requires_grad_(True) for name, p in module.named_parameters()}


def classifier_forward(
    module: nn.Module, params: Params, images: torch.Tensor, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None
) -> torch.Tensor:
    """Logits [N, outputs] for NHWC images in [0, 1] with the given parameters."""
    return functional_call(module, params, (to_model_input(images, mean, std),))


def classifier_from_pretrained(pretrained: Params, module: nn.Module, head_init_std: float, generator: torch.Generator) -> Params:
    """A classifier's parameters from a pre-trained masked autoencoder's (its `encoder.` part): the
    backbone copied, the head fresh (weights N(0, head_init_std), zero bias), the decoder dropped.
    Errors name the first parameter missing or of the wrong shape."""
    params: Params = {}
    for name, shape in param_specs(module):
        if name.startswith("head.fc."):
            value = torch.randn(shape, generator=generator) * head_init_std if name.endswith("weight") else torch.zeros(shape)
            params[name] = value.requires_grad_(True)
            continue
        if name.startswith("head.norm."):  # ConvNeXt's head norm is not part of the pre-trained encoder's output
            params[name] = (torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)).requires_grad_(True)
            continue
        source = pretrained.get(f"encoder.{name}")
        if source is None:
            raise ValueError(f'the pre-trained parameters have no "encoder.{name}": is this a checkpoint of the same encoder and size?')
        if list(source.shape) != shape:
            raise ValueError(f'"encoder.{name}" has shape {list(source.shape)} in the pre-trained parameters, expected {shape}')
        params[name] = source.detach().float().clone().requires_grad_(True)
    return params
