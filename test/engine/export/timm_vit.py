"""A PyTorch ViT with exactly timm's VisionTransformer module names and forward, for the export check.

timm is not installed here, so this file rebuilds the part of timm.models.vision_transformer that a
MAE-style classifier uses (global_pool='avg', fc_norm=True, class_token=True, qkv_bias=True): Pre-Norm
blocks, exact GELU, LayerNorm eps 1e-6, cls token + pos_embed, mean of the patch tokens, fc_norm, head.
The exported state dict must load with strict=True, so any name or shape that differs from timm's fails.

Usage: python3 timm_vit.py CONFIG.json WEIGHTS.safetensors INPUT.npy   (INPUT: NHWC float32 in [0, 1])
Prints one JSON line: {"ok": true, "logits": [[...]], "keys": n, "torch": version}.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    try:
        from safetensors.torch import load_file

        return load_file(path)
    except ImportError:  # Debian's python3-torch has no safetensors package: read the format by hand.
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        header.pop("__metadata__", None)
        out = {}
        for name, info in header.items():
            begin, end = info["data_offsets"]
            chunk = bytearray(raw[8 + n + begin : 8 + n + end])
            out[name] = torch.frombuffer(chunk, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).clone()
        return out


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # NCHW -> NLC, as timm's flatten=True


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()  # exact (erf) GELU, timm's default
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, norm_layer):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, num_classes,
                 global_pool, class_token, fc_norm, qkv_bias):
        super().__init__()
        assert global_pool == "avg" and class_token and fc_norm, "this check covers MAE-style classifiers"
        norm_layer = lambda d: nn.LayerNorm(d, eps=1e-6)  # noqa: E731
        self.global_pool = global_pool
        self.num_prefix_tokens = 1
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_layer) for _ in range(depth)])
        self.norm = nn.Identity()  # timm: Identity when fc_norm is used
        self.fc_norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x):
        x = x[:, self.num_prefix_tokens :].mean(dim=1)
        return self.head(self.fc_norm(x))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def main():
    config_path, weights_path, input_path = sys.argv[1:4]
    with open(config_path) as f:
        config = json.load(f)
    model = VisionTransformer(**config["model_args"])
    state = load_safetensors(weights_path)
    model.load_state_dict(state, strict=True)
    model = model.double().eval()
    images = np.load(input_path)
    assert images.dtype == np.float32 and images.ndim == 4, images.shape
    cfg = config.get("pretrained_cfg", {})
    x = torch.from_numpy(images).double().permute(0, 3, 1, 2)  # NHWC -> NCHW
    mean = torch.tensor(cfg.get("mean", [0.0] * x.shape[1]), dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(cfg.get("std", [1.0] * x.shape[1]), dtype=torch.float64).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model((x - mean) / std)
    print(json.dumps({"ok": True, "logits": logits.tolist(), "keys": len(state), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
