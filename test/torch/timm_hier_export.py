"""A ConvNeXt or Swin export (`mimir export`) against timm (installed from PyPI by the test).

usage: timm_hier_export.py EXPORT.safetensors  (PYTHONPATH holds python/ for mimir_torch)

Builds timm's model from the config JSON beside the export (its registered name, else the class under
timm.models with model_args) and loads the file with strict=True. A classifier: its logits on fixed
images ([0, 1] pixels normalised with pretrained_cfg's mean / std) against the workbench's own logits for
the same images from the checkpoint the JSON names as its source (the PyTorch engine's classifier_forward, as evaluation runs it).
An encoder (num_classes 0): its pooled features' shape. Either way, which exported tensors differ from
the checkpoint's. Prints one JSON object on the last line.
"""
from __future__ import annotations

import importlib
import json
import sys

import timm
import torch

from mimir_torch import model as M
from mimir_torch.checkpoint import load_checkpoint
from mimir_torch.config import ModelConfig
from mimir_torch.safetensors_io import read_safetensors


def main(export: str) -> None:
    with open(export[: -len(".safetensors")] + ".json", encoding="utf-8") as f:
        config = json.load(f)
    if config["timm_model"]:
        model = timm.create_model(config["timm_model"], pretrained=False, **config["model_args"])
    else:
        module, name = config["architecture"].rsplit(".", 1)
        model = getattr(importlib.import_module(f"timm.models.{module}"), name)(**config["model_args"])
    tensors, _ = read_safetensors(export)
    model.load_state_dict(tensors, strict=True)  # raises on any missing, unexpected or misshapen tensor
    model.eval()

    ckpt = load_checkpoint(config["mimir"]["source"]["checkpoint"])
    c = ModelConfig.parse(ckpt.manifest["modelConfig"], "modelConfig")
    images = torch.rand(4, c.image_size, c.image_size, c.channels, generator=torch.Generator().manual_seed(7))
    cfg = config["pretrained_cfg"]
    mean = torch.tensor(cfg["mean"]).reshape(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).reshape(1, -1, 1, 1)
    with torch.no_grad():
        theirs = model((images.permute(0, 3, 1, 2) - mean) / std)
        # Every exported tensor is the checkpoint's own, bit for bit (the logits of a one-epoch run barely
        # depend on ConvNeXt's blocks, whose layer scales are still near 1e-6).
        differing = [k for k, v in tensors.items() if k not in ckpt.params or not torch.equal(v, ckpt.params[k])]
        result = {"tensors": len(tensors), "numClasses": config["num_classes"], "outputShape": list(theirs.shape), "differing": differing}
        if ckpt.manifest["kind"] == "finetune":
            ours = M.classifier_forward(ckpt.params, c, images)
            diff = float((ours - theirs).abs().max())
            scale = float(theirs.abs().max())
            result.update({"maxAbsDiff": diff, "maxAbsLogit": scale, "relativeDiff": diff / scale, "logitStd": float(theirs.std())})
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
