"""Export a hierarchical encoder with timm's names: a safetensors file of its state dict (timm's
ConvNeXt / SwinTransformer load it with strict=True) and a config JSON beside it naming timm's model and
the keyword arguments that build it (timm's registered name for the standard sizes, e.g. convnext_tiny,
swin_base_patch4_window7_224)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict

import torch.nn as nn

from ..safetensors_io import write_safetensors


def timm_config(model: nn.Module) -> Dict[str, Any]:
    describe = getattr(model, "timm_config", None)
    if describe is None:
        raise ValueError(f"{type(model).__name__} has no timm equivalent to export to")
    return describe()


def export_timm(model: nn.Module, path: str) -> str:
    """Writes `path` (safetensors) and `path` with .json for .safetensors; returns the JSON's path."""
    if not path.endswith(".safetensors"):
        raise ValueError(f"the export path must end in .safetensors, got {path}")
    config = timm_config(model)
    write_safetensors(path, {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}, {"format": "pt"})
    json_path = path[: -len(".safetensors")] + ".json"
    temporary = f"{json_path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, json_path)
    return json_path
