"""ConViT and CaiT against timm (installed from PyPI by the test) and against the tfjs engine.

usage: timm_token_encoders.py CASES_DIR  (PYTHONPATH holds python/ for mimir_torch)

1. Full size: timm's convit_small and cait_s24_224 parameter counts, and the workbench's PyTorch
   encoders (mimir_torch.encoders) with random weights exported to timm's layout (strict load) give
   timm's logits.
2. Each micro case the tfjs engine wrote (CASES_DIR/<case>/): its timm-layout export loads strictly
   into timm's ConVit / Cait built from the exported model args and gives the tfjs logits; the PyTorch
   encoders give the tfjs logits, MAE loss and MAE parameter gradients on the same mask.
Prints one JSON object on the last line.
"""
from __future__ import annotations

import json
import math
import os
import sys

import timm
import torch
from timm.models.cait import Cait
from timm.models.convit import ConVit

from mimir_torch.config import ModelConfig
from mimir_torch.encoders import cait as ca
from mimir_torch.encoders import convit as cv
from mimir_torch import model as M
from mimir_torch.encoders.common import to_timm_state_dict, token_mae_loss
from mimir_torch.rng import Rng
from mimir_torch.safetensors_io import read_safetensors

torch.manual_seed(0)


def count(specs):
    return sum(math.prod(shape) for _, shape, _ in specs)


def random_params(specs, generator):
    """Random weights in the workbench layout, large enough that every part of the model matters."""
    params = {}
    for name, shape, role in specs:
        noise = torch.randn(shape, generator=generator)
        if role in ("weight", "patch-weight"):
            value = noise / math.sqrt(shape[0])
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            value = 1 + 0.1 * noise
        elif "gamma_" in name:
            value = 0.2 * noise
        else:
            value = 0.1 * noise
        params[name] = value
    return params


def encoder_for(c):
    """The token encoder of the model's kind, and its classifier and MAE parameter specs (model.py's, through the dispatch)."""
    encode = cv.convit_encoder(c) if c.encoder_kind == "convit" else ca.cait_encoder(c)
    return encode, lambda outputs: M.classifier_param_specs(c, outputs), lambda: M.mae_param_specs(c)


def full_size(architecture, model):
    c = ModelConfig.parse(model)
    encode, classifier_specs, _ = encoder_for(c)
    specs = classifier_specs(1000)
    reference = timm.create_model(architecture, pretrained=False).eval()
    params = random_params(specs, torch.Generator().manual_seed(1))
    reference.load_state_dict(to_timm_state_dict(params, specs, c), strict=True)
    images = torch.rand(2, c.image_size, c.image_size, c.channels, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = M.classifier_forward(params, c, images)
        theirs = reference(images.permute(0, 3, 1, 2))
    return {
        "timmParams": sum(p.numel() for p in reference.parameters()),
        "ourParams": count(specs),
        "logitsMaxDiff": (ours - theirs).abs().max().item(),
        "logitsScale": theirs.abs().max().item(),
    }


def micro_case(folder):
    with open(os.path.join(folder, "case.json")) as f:
        case = json.load(f)
    c = ModelConfig.parse(case["model"])
    encode, classifier_specs, mae_specs = encoder_for(c)
    native, _ = read_safetensors(os.path.join(folder, "native.safetensors"))
    exported, _ = read_safetensors(os.path.join(folder, "timm.safetensors"))
    images = native["images"]
    tfjs_logits = native["tfjs.logits"]

    cls = ConVit if c.encoder_kind == "convit" else Cait
    reference = cls(**case["timm"]["model_args"]).eval()
    reference.load_state_dict(exported, strict=True)
    with torch.no_grad():
        timm_logits = reference(images.permute(0, 3, 1, 2))
        params = {name: native[f"param.{name}"] for name, _, _ in classifier_specs(case["numClasses"])}
        our_logits = M.classifier_forward(params, c, images)

    initial = M.adjust_init(c, M.init_params_rng(M.mae_param_specs(c), Rng(9)))
    init_diff = max((initial[n] - native[f"init.{n}"]).abs().max().item() for n in initial)
    # The special values are there, not only equal: GPSA's v the identity / LayerScale at its init value.
    if c.encoder_kind == "convit":
        init_local = bool(torch.equal(initial["blocks.0.attn.v.weight"], torch.eye(c.width)))
    else:
        init_local = bool(torch.allclose(initial["blocks.0.gamma_1"], torch.full((c.width,), float(c.encoder["layerScaleInit"]))))

    # The checkpoint exported by exportCheckpoint, rebuilt from its config JSON alone.
    with open(os.path.join(folder, "export.json")) as f:
        exported_config = json.load(f)
    family = {"convit.ConVit": ConVit, "cait.Cait": Cait}[exported_config["architecture"]]
    rebuilt = family(**exported_config["model_args"]).eval()
    rebuilt.load_state_dict(read_safetensors(os.path.join(folder, "export.safetensors"))[0], strict=True)
    with torch.no_grad():
        export_logits = rebuilt(images.permute(0, 3, 1, 2))

    mae = {name: native[f"mae.{name}"].clone().requires_grad_(True) for name, _, _ in mae_specs()}
    visible = native["mask.visible"].long()
    masked = native["mask.masked"].long()
    loss = token_mae_loss(encode, mae, c, images, visible, masked)
    grads = torch.autograd.grad(loss, list(mae.values()), allow_unused=True)
    grad_diff = 0.0
    grad_scale = 0.0
    for (name, _), g in zip(mae.items(), grads):
        g = torch.zeros_like(mae[name]) if g is None else g
        grad_diff = max(grad_diff, (g - native[f"tfjs.grad.{name}"]).abs().max().item())
        grad_scale = max(grad_scale, g.abs().max().item())
    return {
        "timmVsTfjsLogits": (timm_logits - tfjs_logits).abs().max().item(),
        "torchVsTfjsLogits": (our_logits - tfjs_logits).abs().max().item(),
        "logitsScale": tfjs_logits.abs().max().item(),
        "torchLoss": loss.item(),
        "tfjsLoss": native["tfjs.loss"].item(),
        "gradMaxDiff": grad_diff,
        "gradScale": grad_scale,
        "timmKeys": len(reference.state_dict()),
        "exportVsTfjsLogits": (export_logits - tfjs_logits).abs().max().item(),
        "exportArchitecture": exported_config["architecture"],
        "initMaxDiff": init_diff,
        "initLocal": init_local,
    }


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "full.json")) as f:
        full = json.load(f)
    result = {"timm": timm.__version__, "torch": torch.__version__, "full": {}, "micro": {}}
    for name, spec in full.items():
        result["full"][name] = full_size(spec["architecture"], spec["model"])
    for name in sorted(os.listdir(folder)):
        if os.path.isdir(os.path.join(folder, name)):
            result["micro"][name] = micro_case(os.path.join(folder, name))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
