"""The hierarchical encoders as the engine's classifiers: parameter dicts through functional_call,
classifiers from pre-trained masked autoencoders, and PGD-AT fine-tuning steps (micro sizes, 32 px)."""
import unittest

import torch
import torch.nn.functional as F

from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.encoders.hier_classifier import (
    build_classifier,
    build_pretrainer,
    classifier_forward,
    classifier_from_pretrained,
    params_of,
)
from mimir_torch.finetune_step import ascend

EPS, ALPHA = 8 / 255, 2 / 255


def batch(n: int = 16):
    x, y = BuiltinDataset("train", 1000, 0, 10, 32).batch(list(range(n)))
    return torch.from_numpy(x).float(), torch.from_numpy(y).long()


class HierClassifierTest(unittest.TestCase):
    def test_functional_forward_equals_the_module(self) -> None:
        for size in ("convnext-micro", "swin-micro"):
            torch.manual_seed(0)
            module = build_classifier(size, 10).eval()
            params = params_of(module)
            images, _ = batch(4)
            logits = classifier_forward(module, params, images)
            torch.testing.assert_close(logits, module(images.permute(0, 3, 1, 2)), rtol=0, atol=0)
            logits.sum().backward()
            self.assertTrue(all(p.grad is not None for p in params.values()), size)

    def test_unknown_size_is_refused_with_the_choices(self) -> None:
        with self.assertRaisesRegex(ValueError, "convnext-micro"):
            build_classifier("convnext-huge", 10)

    def test_classifier_from_a_pretrained_autoencoder(self) -> None:
        for size in ("convnext-micro", "swin-micro"):
            torch.manual_seed(1)
            pretrained = {n: p.detach() + 0.01 for n, p in build_pretrainer(size).named_parameters()}
            module = build_classifier(size, 10)
            params = classifier_from_pretrained(pretrained, module, 2e-5, torch.Generator().manual_seed(0))
            for name, value in params.items():
                if name.startswith("head."):
                    continue
                self.assertTrue(torch.equal(value, pretrained[f"encoder.{name}"]), name)
            self.assertLess(float(params["head.fc.weight"].abs().max()), 1e-3)
            del pretrained["encoder.layers.0.blocks.0.norm1.weight" if size == "swin-micro" else "encoder.stem.0.weight"]
            with self.assertRaisesRegex(ValueError, "have no"):
                classifier_from_pretrained(pretrained, module, 2e-5, torch.Generator().manual_seed(0))

    def test_pgd_at_lowers_the_adversarial_loss(self) -> None:
        images, labels = batch(16)
        for size in ("convnext-micro", "swin-micro"):
            torch.manual_seed(2)
            module = build_classifier(size, 10)
            params = params_of(module)
            optimiser = torch.optim.AdamW(list(params.values()), lr=2e-3)
            gen = torch.Generator().manual_seed(3)
            losses = []
            for _ in range(8):
                frozen = {n: p.detach() for n, p in params.items()}
                start = images + (torch.rand(images.shape, generator=gen) * 2 - 1) * EPS
                adv = ascend(
                    lambda x: classifier_forward(module, frozen, x), images, lambda z: F.cross_entropy(z, labels, reduction="none"),
                    start.clamp(0, 1), EPS, ALPHA, 2, "linf",
                )
                self.assertLessEqual(float((adv - images).abs().max()), EPS + 1e-6)
                loss = F.cross_entropy(classifier_forward(module, params, adv), labels)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(float(loss))
            self.assertLess(losses[-1], 0.9 * losses[0], f"{size}: {losses}")


if __name__ == "__main__":
    unittest.main()
