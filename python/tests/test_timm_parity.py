"""timm parity (issue 18): parameter counts equal timm's models; state dicts exported with timm's names
(export.py: safetensors + config JSON) load into timm's models with strict=True and give the same logits
within 1e-4. Run by the timm venv's python (test/helpers/timm-python.ts), which sees Debian's torch."""
import importlib
import json
import os
import tempfile
import unittest

import timm
import torch
import torch.nn as nn

from mimir_torch.encoders.hier_common import count_parameters
from mimir_torch.encoders.convnext import CONVNEXT_SIZES, ConvNeXt
from mimir_torch.encoders.export import export_timm
from mimir_torch.encoders.swin import SWIN_SIZES, SwinTransformer
from mimir_torch.safetensors_io import read_safetensors

TOLERANCE = 1e-4


def scramble(model: nn.Module, seed: int) -> None:
    """Every parameter redrawn (layer scales and norms included), so no block is near the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma") or (p.dim() == 1 and "norm" in name and name.endswith("weight")):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 16
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def timm_from_export(path: str) -> nn.Module:
    """timm's model as the exported config JSON names it, loaded strictly from the safetensors file."""
    with open(path[: -len(".safetensors")] + ".json", encoding="utf-8") as f:
        config = json.load(f)
    if config["timm_model"]:
        model = timm.create_model(config["timm_model"], pretrained=False, **config["model_args"])
    else:
        module_name, class_name = config["architecture"].rsplit(".", 1)
        model = getattr(importlib.import_module(f"timm.models.{module_name}"), class_name)(**config["model_args"])
    tensors, _ = read_safetensors(path)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


class ParityCase(unittest.TestCase):
    def check_export(self, ours: nn.Module, image_size: int, seed: int) -> None:
        scramble(ours, seed)
        ours.eval()
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.safetensors")
            export_timm(ours, path)
            theirs = timm_from_export(path)
        self.assertEqual(count_parameters(theirs), count_parameters(ours))
        x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        scale = max(1.0, float(b.abs().max()))
        self.assertGreater(float(b.std()), 0.0)
        self.assertLessEqual(float((a - b).abs().max()), TOLERANCE * scale, f"logits differ (scale {scale})")


class ConvNeXtParityTest(ParityCase):
    def test_convnext_tiny_parameter_count(self) -> None:
        ours = ConvNeXt(CONVNEXT_SIZES["convnext-t"])
        self.assertEqual(count_parameters(ours), count_parameters(timm.create_model("convnext_tiny")))
        self.assertEqual(count_parameters(ours), 28_589_128)

    def test_convnext_tiny_export_loads_into_timm_with_the_same_logits(self) -> None:
        self.check_export(ConvNeXt(CONVNEXT_SIZES["convnext-t"], num_classes=1000), 224, 0)

    def test_convnext_micro_export_loads_into_timm_with_the_same_logits(self) -> None:
        self.check_export(ConvNeXt(CONVNEXT_SIZES["convnext-micro"], num_classes=10), 32, 1)


class SwinParityTest(ParityCase):
    def test_swin_base_parameter_count(self) -> None:
        ours = SwinTransformer(SWIN_SIZES["swin-b"])
        self.assertEqual(count_parameters(ours), count_parameters(timm.create_model("swin_base_patch4_window7_224")))
        self.assertEqual(count_parameters(ours), 87_768_224)

    def test_swin_base_export_loads_into_timm_with_the_same_logits(self) -> None:
        self.check_export(SwinTransformer(SWIN_SIZES["swin-b"], num_classes=1000), 224, 2)

    def test_swin_micro_export_loads_into_timm_with_the_same_logits(self) -> None:
        self.check_export(SwinTransformer(SWIN_SIZES["swin-micro"], num_classes=10), 32, 3)


if __name__ == "__main__":
    unittest.main()
