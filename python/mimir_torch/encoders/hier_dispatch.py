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
SparK's and GreenMIM's decoders are their own (spark.py, green.py, hier_pretrain.py); pretrainer(c)
gives pretrain_run.py the masked autoencoder, its parameters, masks and step.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

import torch
import torch.nn as nn
from torch.nn.utils.stateless import functional_call

from ..config import ConfigError, ModelConfig, PretrainSettings
from ..masking import rng_masking
from ..rng import Rng
from .convnext import ConvNeXt, ConvNeXtSize
from .green import GreenSwin
from .hier_pretrain import MI_DEFAULT, HierStepResult, hier_pretrain_step
from .spark import SparKConvNeXt, mask_from_ids, to_model_input
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

    def pretrainer(self, c: ModelConfig, device: torch.device, init_seed: int) -> "HierPretrainer":
        """This encoder's own masked autoencoder (pretrain_run.py uses it in place of the ViT MAE)."""
        return HierPretrainer(self.kind, c, device, init_seed)

    def _no_vit_mae(self) -> ConfigError:
        return ConfigError(
            f"The {self.kind} encoder pre-trains with its own masked autoencoder "
            f"({'SparK' if self.kind == 'convnext' else 'GreenMIM'}, python/mimir_torch/encoders/hier_pretrain.py), "
            "not the ViT MAE (pretrain_run.py runs it through pretrainer())"
        )

    def mae_input(self, c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
        raise self._no_vit_mae()

    def encode_visible_with_layer(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise self._no_vit_mae()


CONVNEXT = HierarchicalEncoder("convnext")
SWIN = HierarchicalEncoder("swin")


class HierPretrainer:
    """Masked pre-training of a ConvNeXt (SparK) or Swin (GreenMIM) for pretrain_run.py. Its parameters
    are the module's own tensors, named as in checkpoints: the encoder's under timm's names (so
    fine-tuning's classifier_from_encoder copies them as it copies a ViT's), the decoder's beside them."""

    def __init__(self, kind: str, c: ModelConfig, device: torch.device, init_seed: int) -> None:
        self.kind = kind
        norm = c.normalize
        mean, std = (norm.mean, norm.std) if norm else (None, None)
        # The modules initialise themselves as timm's do, from torch's global generator: seeded from the
        # run (so a run repeats, and every rank of a distributed run starts from the same weights), and
        # forked so the caller's stream is left as it was.
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            if kind == "convnext":
                encoder = ConvNeXt(convnext_size(c), num_classes=1, in_chans=c.channels)
                self.module: nn.Module = SparKConvNeXt(encoder, decoder_width=c.decoder_width, mean=mean, std=std)
            else:
                encoder_s = SwinTransformer(swin_size(c), num_classes=1, in_chans=c.channels)
                self.module = GreenSwin(encoder_s, c.decoder_width, c.decoder_depth, c.decoder_heads, mean=mean, std=std)
        self.module.to(device)
        self.grid = self.module.mask_grid_for(c.image_size)
        if self.grid * self.grid < 2:
            raise ConfigError(
                f"model: {c.image_size} px images make a {self.grid}x{self.grid} mask grid for this {kind} "
                "(one cell per last-stage position): masked pre-training needs at least 2 cells; use larger images or a smaller stem"
            )
        self.mi_where = MI_DEFAULT[kind]
        self.params = {checkpoint_name(n): p for n, p in self.module.named_parameters()}

    def specs(self) -> List[Tuple[str, List[int], str]]:
        return [(n, list(p.shape), "") for n, p in self.params.items()]

    def draw_mask(self, rng: Rng, batch: int, ratio: float) -> torch.Tensor:
        """Per-sample masks on the coarse grid from the workbench Rng (ConvNeXt); one for the batch (Swin, as GreenMIM)."""
        if self.kind == "swin":
            one = rng_masking(rng, 1, self.grid * self.grid, ratio).visible_ids
            return mask_from_ids(one, self.grid).expand(batch, -1, -1, -1)
        return mask_from_ids(rng_masking(rng, batch, self.grid * self.grid, ratio).visible_ids, self.grid)

    def step(self, run: PretrainSettings, images: torch.Tensor, active: torch.Tensor, start: Optional[torch.Tensor],
             draw: Callable[[], torch.Tensor], loss_scale: float) -> HierStepResult:
        if run.mi.layer_block != 0:
            raise ConfigError(f"mi.layer.block applies to ViT blocks; the {self.kind} encoder takes MI at its last stage ({self.mi_where})")
        result = hier_pretrain_step(self.module, run, images, active, start, self.mi_where, draw, loss_scale)
        result.grads = {checkpoint_name(n): g for n, g in result.grads.items()}
        return result


def checkpoint_name(module_name: str) -> str:
    return module_name[len("encoder."):] if module_name.startswith("encoder.") else module_name
