"""ConvNeXt and Swin through the engine's encoder dispatch: parameter specs and init from a model config,
classifier_forward, a classifier from a pre-training's parameters, PGD-AT through finetune_step.py and
a few PGD-AT updates, and the refusal of the ViT MAE path (micro sizes, 32 px)."""
import unittest

import torch
import torch.nn.functional as F

from mimir_torch import model as M
from mimir_torch.config import ConfigError, ModelConfig
from mimir_torch.encoders import encoder_for
from mimir_torch.encoders.convnext import CONVNEXT_SIZES, ConvNeXt
from mimir_torch.encoders.swin import SWIN_SIZES, SwinTransformer
from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.encoders.hier_dispatch import HierPretrainer
from mimir_torch.finetune_step import ascend, finetune_step
from mimir_torch.rng import Rng

BASE = {"imageSize": 32, "channels": 3, "depth": 1, "heads": 1, "mlpRatio": 4, "decoderWidth": 16, "decoderDepth": 1, "decoderHeads": 1}
CONVNEXT = ModelConfig.parse({**BASE, "patchSize": 1, "width": 128, "encoder": {"kind": "convnext", "depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}})
SWIN = ModelConfig.parse({**BASE, "patchSize": 2, "width": 16, "encoder": {"kind": "swin", "depths": [2, 2, 2], "stageHeads": [1, 2, 4], "windowSize": 4}})


EPS, ALPHA = 8 / 255, 2 / 255


def batch(n: int = 16):
    x, y = BuiltinDataset("train", 1000, 0, 10, 32).batch(list(range(n)))
    return torch.from_numpy(x).float(), torch.from_numpy(y).long()


class FakeFinetune:
    """The fields finetune_step reads for pgd-at."""

    method = "pgd-at"
    threat = "linf"
    eps = 8.0
    attack_steps = 2
    attack_alpha = 2.0
    random_start = True
    drop_path = 0.0
    label_smoothing = 0.0
    effective_label_smoothing = 0.0


class DispatchTest(unittest.TestCase):
    def test_specs_match_the_modules_and_timm_names(self) -> None:
        for c, module in ((CONVNEXT, ConvNeXt(CONVNEXT_SIZES["convnext-micro"], num_classes=10)), (SWIN, SwinTransformer(SWIN_SIZES["swin-micro"], num_classes=10))):
            specs = M.classifier_param_specs(c, 10)
            self.assertEqual([(n, s) for n, s, _ in specs], [(n, list(p.shape)) for n, p in module.named_parameters()])

    def test_pretrainer_weights_follow_the_init_seed_only(self) -> None:
        """Pre-training starts from weights that the run's seed decides: the same on every rank and on a rerun."""
        for kind, c in (("convnext", CONVNEXT), ("swin", SWIN)):
            torch.manual_seed(1)
            first = {n: p.detach().clone() for n, p in HierPretrainer(kind, c, torch.device("cpu"), 7).params.items()}
            after_first = torch.rand(3)
            torch.manual_seed(2)  # another global state: no effect on the weights
            again = HierPretrainer(kind, c, torch.device("cpu"), 7).params
            other = HierPretrainer(kind, c, torch.device("cpu"), 8).params
            for name, value in first.items():
                self.assertTrue(torch.equal(value, again[name].detach()), f"{kind} {name} differs for the same seed")
            drawn = [n for n, v in first.items() if v.numel() > 1 and float(v.std()) > 0]
            self.assertGreater(len(drawn), 3)
            self.assertTrue(all(not torch.equal(first[n], other[n].detach()) for n in drawn), f"{kind}: seed 8 repeats seed 7's weights")
            torch.manual_seed(1)
            self.assertTrue(torch.equal(torch.rand(3), after_first), f"{kind}: building the pretrainer moved the global generator")

    def test_init_roles(self) -> None:
        params = M.init_params_rng(M.classifier_param_specs(CONVNEXT, 10), Rng(0), head_init_std=2e-5)
        self.assertTrue(torch.all(params["stages.0.blocks.0.gamma"] == 1e-6))
        self.assertLess(float(params["head.fc.weight"].std()), 1e-4)
        self.assertAlmostEqual(float(params["stages.3.blocks.0.mlp.fc1.weight"].std()), 0.02, delta=0.002)
        self.assertTrue(torch.all(params["stem.1.weight"] == 1) and torch.all(params["stem.0.bias"] == 0))
        swin = M.init_params_rng(M.classifier_param_specs(SWIN, 10), Rng(0))
        self.assertAlmostEqual(float(swin["layers.0.blocks.0.attn.relative_position_bias_table"].std()), 0.02, delta=0.01)

    def test_classifier_forward_equals_the_module(self) -> None:
        images, _ = batch(4)
        for c in (CONVNEXT, SWIN):
            params = M.init_params_rng(M.classifier_param_specs(c, 10), Rng(1), head_init_std=0.02)
            module = encoder_for(c).module(c, 10)
            with torch.no_grad():
                for name, p in module.named_parameters():
                    p.copy_(params[name])
            torch.testing.assert_close(M.classifier_forward(params, c, images), module.eval()(images.permute(0, 3, 1, 2)), rtol=0, atol=0)

    def test_pgd_at_step_through_finetune_step(self) -> None:
        images, labels = batch(8)
        targets = torch.nn.functional.one_hot(labels, 10).float()
        gen = torch.Generator().manual_seed(0)
        for c in (CONVNEXT, SWIN):
            params = M.init_params_rng(M.classifier_param_specs(c, 10), Rng(2), head_init_std=0.02)
            start = (torch.rand(images.shape, generator=gen) * 2 - 1) * 8 / 255
            result = finetune_step(params, c, FakeFinetune(), images, targets, labels, start, Rng(3))
            self.assertIsNotNone(result.adversarial)
            self.assertLessEqual(float((result.adversarial - images).abs().max()), 8 / 255 + 1e-6)
            self.assertEqual(set(result.grads), set(params))
            self.assertTrue(all(torch.isfinite(g).all() for g in result.grads.values()))
            self.assertGreater(float(result.grads["head.fc.weight"].abs().sum()), 0.0)

    def test_classifier_from_a_pretraining(self) -> None:
        for kind, c in (("convnext", CONVNEXT), ("swin", SWIN)):
            torch.manual_seed(1)
            pretrained = {n: p.detach() + 0.01 for n, p in HierPretrainer(kind, c, torch.device("cpu"), 0).params.items()}
            params = M.classifier_from_encoder(pretrained, c, 10, Rng(0), 2e-5)
            for name, value in params.items():
                if not name.startswith("head."):
                    self.assertTrue(torch.equal(value, pretrained[name]), name)
            self.assertLess(float(params["head.fc.weight"].abs().max()), 1e-3)
            self.assertTrue(any(n.startswith(("mask_token", "decoder_")) for n in pretrained))  # the decoder is dropped
            self.assertFalse(any(n.startswith(("mask_token", "decoder_")) for n in params))
            del pretrained["stem.0.weight" if kind == "convnext" else "layers.0.blocks.0.norm1.weight"]
            with self.assertRaisesRegex(ValueError, "have no"):
                M.classifier_from_encoder(pretrained, c, 10, Rng(0), 2e-5)

    def test_pgd_at_lowers_the_adversarial_loss(self) -> None:
        images, labels = batch(16)
        for c in (CONVNEXT, SWIN):
            params = M.init_params_rng(M.classifier_param_specs(c, 10), Rng(2), head_init_std=0.02)
            optimiser = torch.optim.AdamW(list(params.values()), lr=2e-3)
            gen = torch.Generator().manual_seed(3)
            losses = []
            for _ in range(8):
                frozen = {n: p.detach() for n, p in params.items()}
                start = (images + (torch.rand(images.shape, generator=gen) * 2 - 1) * EPS).clamp(0, 1)
                objective = lambda z: F.cross_entropy(z, labels, reduction="none")  # noqa: E731
                adv = ascend(lambda x: M.classifier_forward(frozen, c, x), images, objective, start, EPS, ALPHA, 2, "linf")
                self.assertLessEqual(float((adv - images).abs().max()), EPS + 1e-6)
                loss = F.cross_entropy(M.classifier_forward(params, c, adv), labels)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(float(loss))
            self.assertLess(losses[-1], 0.95 * losses[0], f"{c.encoder_kind}: {losses}")

    def test_vit_mae_path_is_refused_with_the_reason(self) -> None:
        for c in (CONVNEXT, SWIN):
            with self.assertRaisesRegex(ConfigError, "own masked autoencoder"):
                M.mae_input(c, torch.zeros(1, 32, 32, 3), torch.zeros(1, 4, dtype=torch.long))

    def test_bad_encoder_fields_are_refused(self) -> None:
        bad = ModelConfig.parse({**BASE, "patchSize": 8, "width": 128, "encoder": {"kind": "convnext", "depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}})
        with self.assertRaisesRegex(ConfigError, "do not divide"):
            M.classifier_param_specs(bad, 10)


if __name__ == "__main__":
    unittest.main()
