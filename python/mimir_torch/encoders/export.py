"""Export a hierarchical encoder with timm's names: a safetensors file of its state dict (timm's
ConvNeXt / SwinTransformer load it with strict=True) and a config JSON beside it: `architecture` (timm's
class under timm.models, e.g. convnext.ConvNeXt), `timm_model` (timm's registered name for the standard
sizes, convnext_tiny and swin_base_patch4_window7_224, else null) and `model_args` (the keyword arguments
that build it), with whatever `extra` the caller adds (export_run.py: the workbench's record)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional

import torch.nn as nn

from ..safetensors_io import write_safetensors


def timm_config(model: nn.Module) -> Dict[str, Any]:
    describe = getattr(model, "timm_config", None)
    if describe is None:
        raise ValueError(f"{type(model).__name__} has no timm equivalent to export to")
    return describe()


def config_path_for(path: str) -> str:
    """model.safetensors -> model.json beside it (src/engine/export/targets.ts configPathFor)."""
    return path[: -len(".safetensors")] + ".json"


def export_timm(model: nn.Module, path: str, extra: Optional[Mapping[str, Any]] = None) -> str:
    """Writes `path` (safetensors) and its config JSON, each atomically (a temporary sibling renamed into
    place, replacing what is there: whether that may happen is the caller's to decide); returns the JSON's path."""
    if not path.endswith(".safetensors"):
        raise ValueError(f"the export path must end in .safetensors, got {path}")
    config = {**timm_config(model), **(extra or {})}
    write_safetensors(path, {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}, {"format": "pt"})
    json_path = config_path_for(path)
    temporary = f"{json_path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, json_path)
    return json_path
