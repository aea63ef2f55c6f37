"""ViT + ConvStem as exported by MIMIR Workbench (`mimir export`), in plain PyTorch (no timm needed).

timm has no ConvStem ViT, so an export of one names this module in its config JSON
("architecture": "mimir_convstem_vit.ConvStemViT"). The state dict keys are the workbench's, which
for the stem are the authors' (xiaoyunxxy/MIMIR models/mae_vit.py, ConvBlock as patch_embed.proj):

  patch_embed.proj.stem.{3i}      Conv2d(3x3, stride 2, padding 1), i = 0 .. len(stem_channels) - 1
  patch_embed.proj.stem.{3i+1}    LayerNorm over the channels (eps 1e-6)
  patch_embed.proj.stem.{3i+2}    GELU
  patch_embed.proj.stem.{3n}      Conv2d(1x1) to embed_dim
  cls_token, pos_embed (fixed 2-D sin-cos, stored), blocks.{i}.* (timm's Block names),
  a classifier: fc_norm, head (mean of the patch tokens); an encoder export: norm.

Use:
    model, config = load("model.safetensors")            # the config JSON beside it is read too
    logits = model(preprocess(images_nhwc_0_to_1, config))

or from a shell, to print the logits of a float32 NHWC .npy batch in [0, 1]:
    python3 mimir_convstem_vit.py CONFIG.json WEIGHTS.safetensors INPUT.npy
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    """A safetensors file as {name: tensor}, read directly (the format is a JSON header and raw little-endian data)."""
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


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map (the authors' LayerNorm, data_format channels_first)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvBlock(nn.Module):
    def __init__(self, in_chans, stem_channels, embed_dim):
        super().__init__()
        layers, channels = [], in_chans
        for width in stem_channels:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), ChannelLayerNorm(width), nn.GELU()]
            channels = width
        layers.append(nn.Conv2d(channels, embed_dim, 1))
        self.stem = nn.Sequential(*layers)

    def forward(self, x):
        return self.stem(x)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, stem_channels, embed_dim):
        super().__init__()
        self.proj = ConvBlock(in_chans, stem_channels, embed_dim)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # NCHW -> [N, L, D], grid order


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * self.head_dim ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvStemViT(nn.Module):
    """Takes the config JSON's model_args. Input: NCHW images already normalised (see preprocess)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, num_classes,
                 global_pool, class_token, fc_norm, qkv_bias, stem_channels):
        super().__init__()
        if 2 ** len(stem_channels) != patch_size or not class_token:
            raise ValueError(f"stem_channels {stem_channels} must hold log2(patch_size {patch_size}) widths, with a class token")
        self.global_pool = global_pool
        self.patch_embed = PatchEmbed(in_chans, stem_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + 1, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.Identity() if fc_norm else nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if fc_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward(self, x):
        x = self.forward_features(x)
        x = x[:, 1:].mean(dim=1) if self.global_pool == "avg" else x[:, 0]
        return self.head(self.fc_norm(x))


def load(weights_path, config_path=None):
    """(model, config) from an export: the config JSON defaults to the file beside the weights."""
    config_path = config_path or os.path.splitext(weights_path)[0] + ".json"
    with open(config_path) as f:
        config = json.load(f)
    if config.get("naming", "timm") != "timm":
        raise ValueError(f"{config_path}: export with timm naming (PyTorch layouts); this file has '{config['naming']}'")
    model = ConvStemViT(**config["model_args"])
    model.load_state_dict(read_safetensors(weights_path), strict=True)
    return model.eval(), config


def preprocess(images_nhwc, config):
    """NHWC images in [0, 1] -> the normalised NCHW input the model takes (pretrained_cfg's mean and std)."""
    x = torch.as_tensor(images_nhwc).permute(0, 3, 1, 2)
    cfg = config.get("pretrained_cfg", {})
    mean = torch.tensor(cfg.get("mean", [0.0] * x.shape[1]), dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(cfg.get("std", [1.0] * x.shape[1]), dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def main():
    import numpy as np

    config_path, weights_path, input_path = sys.argv[1:4]
    model, config = load(weights_path, config_path)
    images = torch.from_numpy(np.load(input_path)).double()
    with torch.no_grad():
        logits = model.double()(preprocess(images, config))
    keys = len(model.state_dict())
    print(json.dumps({"ok": True, "logits": logits.tolist(), "keys": keys, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
