"""The ViT masked autoencoder and the fine-tuning classifier of src/engine/model, in PyTorch.

Parameters are one ordered dict from the workbench's names (timm / MAE names) to tensors in the
workbench's layouts (src/engine/model/params.ts): linear weights [in, out] (y = x @ W + b),
patch_embed.proj.weight [p*p*C, D] over a patch flattened (row, column, channel), channel fastest.
So a checkpoint's safetensors load as they are, in either engine. Images are NHWC in [0, 1].
The encoder (model.encoder.kind) is looked up in encoders/ (the plain ViT: encoders/vit.py); the MAE
decoder, the losses and the shared layers live here.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .rng import Rng

Params = Dict[str, torch.Tensor]

LAYER_NORM_EPS = 1e-6
NORM_PIX_EPS = 1e-6


# ---------------------------------------------------------------- parameter specs
def _linear(prefix: str, fan_in: int, fan_out: int) -> List[Tuple[str, List[int], str]]:
    return [(f"{prefix}.weight", [fan_in, fan_out], "weight"), (f"{prefix}.bias", [fan_out], "bias")]


def _norm(prefix: str, width: int) -> List[Tuple[str, List[int], str]]:
    return [(f"{prefix}.weight", [width], "norm"), (f"{prefix}.bias", [width], "norm")]


def _block(prefix: str, width: int, mlp_ratio: float) -> List[Tuple[str, List[int], str]]:
    hidden = round(width * mlp_ratio)
    return [
        *_norm(f"{prefix}.norm1", width),
        *_linear(f"{prefix}.attn.qkv", width, 3 * width),
        *_linear(f"{prefix}.attn.proj", width, width),
        *_norm(f"{prefix}.norm2", width),
        *_linear(f"{prefix}.mlp.fc1", width, hidden),
        *_linear(f"{prefix}.mlp.fc2", hidden, width),
    ]


def mae_param_specs(c: ModelConfig) -> List[Tuple[str, List[int], str]]:
    """(name, shape, role) in params.ts's maeParamSpecs order."""
    specs = encoder_for(c).backbone_specs(c) + _norm("norm", c.width)
    specs.append(("mask_token", [1, 1, c.decoder_width], "token"))
    specs += _linear("decoder_embed", c.width, c.decoder_width)
    for i in range(c.decoder_depth):
        specs += _block(f"decoder_blocks.{i}", c.decoder_width, c.mlp_ratio)
    specs += _norm("decoder_norm", c.decoder_width) + _linear("decoder_pred", c.decoder_width, c.patch_dim)
    return specs


def classifier_param_specs(c: ModelConfig, outputs: int) -> List[Tuple[str, List[int], str]]:
    encoder = encoder_for(c)
    return encoder.backbone_specs(c) + encoder.head_specs(c, outputs)


def init_params(specs: List[Tuple[str, List[int], str]], generator: torch.Generator, head_init_std: float = 2e-5) -> Params:
    """Initialise as params.ts does (xavier-uniform linears, N(0, 0.02) tokens, head N(0, head_init_std));
    the draws come from torch's generator, so the values differ from a tfjs run with the same seed."""
    params: Params = {}
    for name, shape, role in specs:
        if role == "conv-weight":
            bound = 1.0 / math.sqrt(shape[0] * shape[1] * shape[2])
            value = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        elif role in ("weight", "patch-weight") and name != "head.weight":
            bound = math.sqrt(6.0 / (shape[0] + shape[1]))
            value = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        elif name == "head.weight" or role == "head-weight":
            value = torch.randn(shape, generator=generator) * head_init_std
        elif role == "layer-scale":  # ConvNeXt's gamma: timm's ls_init_value
            value = torch.full(shape, 1e-6)
        elif role == "token":
            value = torch.randn(shape, generator=generator) * 0.02
        elif role == "norm" and name.endswith(".weight"):
            value = torch.ones(shape)
        else:
            value = torch.zeros(shape)
        params[name] = value.requires_grad_(True)
    return params


def init_params_rng(specs: List[Tuple[str, List[int], str]], rng: "Rng", head_init_std: float = 2e-5) -> Params:
    """params.ts's initParams with the workbench Rng: the same initial weights as the tfjs engine for a seed
    (xavier-uniform linears and patch embedding, N(0, 0.02) tokens, head N(0, head_init_std), every
    value drawn in spec order, float64 then float32)."""
    params: Params = {}
    for name, shape, role in specs:
        size = 1
        for d in shape:
            size *= d
        if name == "head.weight" or role == "head-weight":
            values = [rng.normal() * head_init_std for _ in range(size)]
        elif role == "conv-weight":  # params.ts's 'uniform' init, torch's Conv2d default: U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(shape[0] * shape[1] * shape[2])
            values = [(2 * rng.uniform() - 1) * bound for _ in range(size)]
        elif role == "layer-scale":  # ConvNeXt's gamma: timm's ls_init_value
            values = [1e-6] * size
        elif role in ("weight", "patch-weight"):
            bound = math.sqrt(6 / (shape[0] + shape[1]))
            values = [(2 * rng.uniform() - 1) * bound for _ in range(size)]
        elif role == "token":
            values = [rng.normal() * 0.02 for _ in range(size)]
        elif role == "norm" and name.endswith(".weight"):
            values = [1.0] * size
        else:
            values = [0.0] * size
        params[name] = torch.tensor(values, dtype=torch.float64).float().reshape(shape).requires_grad_(True)
    return params


def adjust_init(c: ModelConfig, params: Params) -> Params:
    """The encoder's initial values that are not plain draws (params.ts initMaeParams / initClassifierParams
    run the tfjs twin, adjustInit), applied in place after init_params_rng's draws."""
    impl = encoder_for(c)
    if hasattr(impl, "adjust_init"):
        impl.adjust_init(c, params)
    return params


def classifier_from_encoder(source: Params, c: ModelConfig, outputs: int, rng: Rng, head_init_std: float) -> Params:
    """params.ts's classifierParamsFromEncoder: the backbone copied from a pre-trained MAE (or classifier),
    fc_norm and the head fresh (head weights N(0, head_init_std) from `rng`); MAE's norm and decoder dropped."""
    params: Params = {}
    head = {name for name, _, _ in encoder_for(c).head_specs(c, outputs)}
    for name, shape, role in classifier_param_specs(c, outputs):
        if name in head:
            params.update(init_params_rng([(name, shape, role)], rng, head_init_std))
            continue
        if name not in source:
            raise ValueError(f'the pre-trained parameters have no "{name}"')
        if list(source[name].shape) != shape:
            raise ValueError(f'"{name}" has shape {list(source[name].shape)} in the pre-trained parameters, expected {shape}')
        params[name] = source[name].detach().float().clone().requires_grad_(True)
    return params


def check_params(params: Params, specs: List[Tuple[str, List[int], str]]) -> None:
    """Exactly the names and shapes of `specs` (after loading a checkpoint), or an error naming the first difference."""
    for name, shape, _ in specs:
        if name not in params:
            raise ValueError(f'missing parameter "{name}"')
        if list(params[name].shape) != shape:
            raise ValueError(f'parameter "{name}" has shape {list(params[name].shape)}, expected {shape}')
    expected = {name for name, _, _ in specs}
    for name in params:
        if name not in expected:
            raise ValueError(f'unexpected parameter "{name}"')


# ---------------------------------------------------------------- fixed tables and patches
def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """[1 + grid*grid, dim] as pos-embed.ts (row 0 zero; columns: sin/cos of the column j, then of the row i)."""
    if dim % 4 != 0:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    i, j = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    i = i.reshape(-1, 1) * omega
    j = j.reshape(-1, 1) * omega
    table = torch.cat([torch.sin(j), torch.cos(j), torch.sin(i), torch.cos(i)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table], dim=0).float()


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """NHWC [N, H, W, C] -> [N, L, p*p*C], patch l = i*grid + j, values (row, column, channel), channel fastest."""
    n, h, w, c = images.shape
    if h != w or h % p != 0:
        raise ValueError(f"images {list(images.shape)} do not split into {p} px square patches")
    g = h // p
    rows = images.reshape(n * g, p, g, p * c)
    return rows.permute(0, 2, 1, 3).reshape(n, g * g, p * p * c)


def unpatchify(patches: torch.Tensor, p: int, channels: int) -> torch.Tensor:
    n, l, _ = patches.shape
    g = int(round(math.sqrt(l)))
    grid = patches.reshape(n * g, g, p, p * channels)
    return grid.permute(0, 2, 1, 3).reshape(n, g * p, g * p, channels)


def gather_rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [N, L, K] gathered per sample by ids [N, M] -> [N, M, K] (differentiable w.r.t. x)."""
    return torch.gather(x, 1, ids.long().unsqueeze(-1).expand(-1, -1, x.shape[2]))


def normalize_patches(c: ModelConfig, patches: torch.Tensor) -> torch.Tensor:
    if c.normalize is None:
        return patches
    k = c.patch_dim
    mean = torch.tensor([c.normalize.mean[i % c.channels] for i in range(k)], dtype=patches.dtype, device=patches.device)
    std = torch.tensor([c.normalize.std[i % c.channels] for i in range(k)], dtype=patches.dtype, device=patches.device)
    return (patches - mean) * (1.0 / std)


# ---------------------------------------------------------------- layers
def linear(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x, params[f"{prefix}.weight"]) + params[f"{prefix}.bias"]


def layer_norm(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), params[f"{prefix}.weight"], params[f"{prefix}.bias"], LAYER_NORM_EPS)


def attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """qkv [B, T, 3W] with columns (q|k|v, head, dim) -> [B, T, W]: softmax(q k^T / sqrt(d)) v per head."""
    b, t, w3 = qkv.shape
    width = w3 // 3
    d = width // heads
    q, k, v = qkv.reshape(b, t, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    probabilities = torch.softmax(torch.matmul(q * (1.0 / math.sqrt(d)), k.transpose(-2, -1)), dim=-1)
    return torch.matmul(probabilities, v).transpose(1, 2).reshape(b, t, width)


def drop_path_rates(rate: float, depth: int) -> List[float]:
    """timm's linspace(0, rate, depth)."""
    return [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]


def _residual(x: torch.Tensor, branch: torch.Tensor, rate: float, rng: Optional[Rng]) -> torch.Tensor:
    """x + branch, the branch dropped per sample with probability `rate` (kept ones scaled by 1 / (1 - rate)),
    drawn from the workbench Rng one sample after another, as transformer.ts draws them."""
    if rate > 0 and rng is not None:
        keep = 1.0 - rate
        factor = [1.0 / keep if rng.uniform() < keep else 0.0 for _ in range(x.shape[0])]
        return x + branch * torch.tensor(factor, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return x + branch


def block(params: Params, prefix: str, x: torch.Tensor, heads: int, rate: float = 0.0, rng: Optional[Rng] = None) -> torch.Tensor:
    """Pre-Norm block: x + attn(norm1(x)), then + mlp(norm2(x)), exact GELU."""
    attended = attention(linear(params, f"{prefix}.attn.qkv", layer_norm(params, f"{prefix}.norm1", x)), heads)
    x = _residual(x, linear(params, f"{prefix}.attn.proj", attended), rate, rng)
    hidden = F.gelu(linear(params, f"{prefix}.mlp.fc1", layer_norm(params, f"{prefix}.norm2", x)))
    return _residual(x, linear(params, f"{prefix}.mlp.fc2", hidden), rate, rng)


def stack(
    params: Params, prefix: str, depth: int, x: torch.Tensor, heads: int, drop_path: float = 0.0, rng: Optional[Rng] = None,
    outputs: Optional[List[torch.Tensor]] = None,
) -> torch.Tensor:
    """`outputs`, when given, receives each block's output (for a penalty taken inside the stack)."""
    for i, rate in enumerate(drop_path_rates(drop_path, depth)):
        x = block(params, f"{prefix}.{i}", x, heads, rate, rng)
        if outputs is not None:
            outputs.append(x)
    return x


# ---------------------------------------------------------------- the masked autoencoder
def encode_visible(params: Params, c: ModelConfig, patches: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
    """Visible pixel patches [N, Lv, K] with their ids [N, Lv] -> latent [N, 1 + Lv, D] (after the final norm)."""
    return encode_visible_with_layer(params, c, patches, visible_ids, 0, True)[0]


def mae_input(c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor) -> torch.Tensor:
    """What the encoder reads of the images (encoders/__init__.py): the visible patches [N, Lv, K] for a
    ViT, every patch [N, L, K] for an encoder that embeds the whole image (ConvStem)."""
    return encoder_for(c).mae_input(c, images, visible_ids)


def encode_visible_with_layer(
    params: Params, c: ModelConfig, patches: torch.Tensor, visible_ids: torch.Tensor, block_number: int, final_norm: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(latent, the features MI takes): block `block_number`'s output (counted from 1; 0: the last), through
    the final norm when `final_norm` (src/engine/model/mae.ts encodeVisibleWithLayer)."""
    if block_number > c.depth:
        raise ValueError(f"mi.layer.block {block_number} is past the encoder's {c.depth} blocks")
    return encoder_for(c).encode_visible_with_layer(params, c, patches, visible_ids, block_number, final_norm)


def decode(params: Params, c: ModelConfig, latent: torch.Tensor, visible_ids: torch.Tensor, masked_ids: torch.Tensor) -> torch.Tensor:
    """latent [N, 1 + Lv, D] -> predictions [N, L, K] in the order visible ids, then masked ids."""
    n = latent.shape[0]
    embedded = linear(params, "decoder_embed", latent)
    mask_tokens = params["mask_token"].expand(n, masked_ids.shape[1], -1)
    table = sincos_pos_embed(c.decoder_width, c.grid).to(latent.device)
    order = torch.cat([torch.zeros(n, 1, dtype=torch.long, device=latent.device), visible_ids.long() + 1, masked_ids.long() + 1], dim=1)
    tokens = torch.cat([embedded, mask_tokens], dim=1) + table[order]
    out = stack(params, "decoder_blocks", c.decoder_depth, tokens, c.decoder_heads)
    return linear(params, "decoder_pred", layer_norm(params, "decoder_norm", out))[:, 1:, :]


def ordered_patches(c: ModelConfig, images: torch.Tensor, visible_ids: torch.Tensor, masked_ids: torch.Tensor) -> torch.Tensor:
    """The images' patches (normalised like the model's input when configured), visible ids then masked ids."""
    patches = normalize_patches(c, patchify(images, c.patch_size))
    return gather_rows(patches, torch.cat([visible_ids, masked_ids], dim=1))


def norm_pix_targets(target: torch.Tensor) -> torch.Tensor:
    """(t - mean) / sqrt(var + 1e-6) over the last axis, var unbiased (torch's var(), MAE's norm_pix_loss)."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True, unbiased=True)
    return (target - mean) / torch.sqrt(var + NORM_PIX_EPS)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, num_visible: int, norm_pix: bool) -> torch.Tensor:
    """MSE over the masked patches (positions num_visible.. of the visible-then-masked order)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {list(pred.shape)} and target {list(target.shape)} differ in shape")
    masked_target = target[:, num_visible:, :]
    if norm_pix:
        masked_target = norm_pix_targets(masked_target)
    return ((pred[:, num_visible:, :] - masked_target) ** 2).mean()


# ---------------------------------------------------------------- the classifier
def classifier_forward(params: Params, c: ModelConfig, images: torch.Tensor, drop_path: float = 0.0, rng: Optional[Rng] = None) -> torch.Tensor:
    """Logits [N, outputs] for NHWC images in [0, 1] (the ViT: timm's VisionTransformer, global_pool='avg', fc_norm)."""
    return encoder_for(c).classifier_forward(params, c, images, drop_path, rng)


def encoder_for(c: ModelConfig):  # noqa: ANN201 (an encoders/ implementation)
    from .encoders import encoder_for as lookup

    return lookup(c)
