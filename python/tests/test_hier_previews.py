"""Reconstruction previews of ConvNeXt (SparK) and Swin (GreenMIM) pre-training (previews.py
write_hier_preview_snapshot): the strips' files and sizes, the masked strip grey exactly on the masked units,
visible units of the reconstruction taken from the input, masked ones the decoder's prediction, and the
norm_pix mapping back checked analytically (a decoder that predicts the normalised target exactly must give
the clean image back)."""
import os
import struct
import tempfile
import unittest

import numpy as np
import torch

from mimir_torch import model as M
from mimir_torch.config import MiSettings, ModelConfig, PretrainAttack, PretrainSettings
from mimir_torch.encoders.hier_dispatch import HierPretrainer
from mimir_torch.encoders.hier_pretrain import visible_pixels
from mimir_torch.previews import write_hier_preview_snapshot
from mimir_torch.rng import Rng

BASE = {"imageSize": 32, "channels": 3, "depth": 1, "heads": 1, "mlpRatio": 4, "decoderWidth": 16, "decoderDepth": 1, "decoderHeads": 1}
CONVNEXT = ModelConfig.parse({**BASE, "patchSize": 1, "width": 128, "encoder": {"kind": "convnext", "depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}})
SWIN = ModelConfig.parse({**BASE, "patchSize": 2, "width": 16, "encoder": {"kind": "swin", "depths": [2, 2, 2], "stageHeads": [1, 2, 4], "windowSize": 4}})
NORMALISED = {"normalize": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}}


def settings(mode: str, norm_pix: bool) -> PretrainSettings:
    return PretrainSettings(
        mode=mode,
        mask_ratio=0.75,
        norm_pix_loss=norm_pix,
        attack=PretrainAttack(steps=1, eps=8.0, alpha=2.0, perturb="visible", attack_mask="shared"),
        mi=MiSettings(estimator="nhsic", sigma=5.0, bandwidth="fixed", alpha=1.01, eps_r=1e-8, lam=0.02, token_order="spatial"),
    )


def read_png(path: str) -> np.ndarray:
    """An 8-bit RGB PNG as written by png.py -> [H, W, 3] uint8."""
    import zlib

    with open(path, "rb") as f:
        data = f.read()
    width, height = struct.unpack(">II", data[16:24])
    at, idat = 8, b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    return rows[:, 1:].reshape(height, width, 3)


def strip(images: torch.Tensor) -> np.ndarray:
    """NHWC [0, 1] -> the strip png.py writes, as uint8."""
    n, s = images.shape[0], images.shape[1]
    pixels = np.floor(np.clip(images.double().numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)
    return pixels.transpose(1, 0, 2, 3).reshape(s, n * s, 3)


class HierPreviewTest(unittest.TestCase):
    def setUp(self) -> None:
        self.clean = torch.rand(3, 32, 32, 3, generator=torch.Generator().manual_seed(4))

    def snapshot(self, c: ModelConfig, run: PretrainSettings):
        torch.manual_seed(0)
        pretrainer = HierPretrainer(c.encoder["kind"], c, torch.device("cpu"), 0)
        directory = tempfile.mkdtemp()
        return pretrainer, write_hier_preview_snapshot(pretrainer, run, 11, self.clean, directory)

    def test_mimir_strips_for_both_encoders(self) -> None:
        for c in (CONVNEXT, SWIN):
            with self.subTest(c.encoder["kind"]):
                run = settings("mimir", norm_pix=False)
                pretrainer, snap = self.snapshot(c, run)
                self.assertEqual(sorted(snap["files"]), ["adversarial", "clean", "masked", "perturbation", "reconstruction"])
                self.assertEqual(snap["count"], 3)
                self.assertAlmostEqual(snap["perturbationScale"], 0.5 / (8 / 255))
                for path in snap["files"].values():
                    self.assertTrue(os.path.isfile(path))
                    self.assertEqual(read_png(path).shape, (32, 96, 3))
                np.testing.assert_array_equal(read_png(snap["files"]["clean"]), strip(self.clean))
                # The mask is the one the run's Rng gives from seed ^ 0x5eed (one for the batch for Swin).
                active = pretrainer.draw_mask(Rng(11 ^ 0x5EED), 3, 0.75)
                visible = visible_pixels(active, 32)
                self.assertAlmostEqual(float(visible.mean()), 0.25)
                masked = read_png(snap["files"]["masked"]).astype(np.int64)
                expected_masked = strip(self.clean * visible + 0.5 * (1 - visible)).astype(np.int64)
                np.testing.assert_array_equal(masked, expected_masked)
                adversarial = read_png(snap["files"]["adversarial"]).astype(np.int64)
                reconstruction = read_png(snap["files"]["reconstruction"]).astype(np.int64)
                on = strip(visible.expand(-1, -1, -1, 3)).astype(bool)
                # Visible units come from the (adversarial) input; masked ones are predictions, not the input.
                np.testing.assert_array_equal(reconstruction[on], adversarial[on])
                self.assertGreater(float(np.abs(reconstruction[~on] - adversarial[~on]).mean()), 1.0)
                # The attack moved the input (within eps: at most 8 levels and a rounding step).
                delta = adversarial - read_png(snap["files"]["clean"]).astype(np.int64)
                self.assertLessEqual(int(np.abs(delta).max()), 9)
                self.assertGreater(int(np.abs(delta).max()), 0)

    def test_mae_mode_draws_three_strips(self) -> None:
        _, snap = self.snapshot(SWIN, settings("mae", norm_pix=True))
        self.assertEqual(sorted(snap["files"]), ["clean", "masked", "reconstruction"])

    def test_norm_pix_predictions_map_back_to_the_image(self) -> None:
        """A decoder predicting exactly the normalised, norm_pix target of every unit gives the clean image back."""
        for c in (CONVNEXT, SWIN):
            with self.subTest(c.encoder["kind"]):
                normalised = ModelConfig.parse({**BASE, **NORMALISED, "patchSize": c.patch_size, "width": c.width, "encoder": c.encoder})
                torch.manual_seed(0)
                pretrainer = HierPretrainer(c.encoder["kind"], normalised, torch.device("cpu"), 0)
                model = pretrainer.module
                unit = 32 // pretrainer.grid
                mean = torch.tensor(model.mean).reshape(1, 1, 1, 3)
                std = torch.tensor(model.std).reshape(1, 1, 1, 3)

                def perfect(inputs: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
                    return M.unpatchify(M.norm_pix_targets(M.patchify((self.clean - mean) / std, unit)), unit, 3)

                model.reconstruct = perfect
                snap = write_hier_preview_snapshot(pretrainer, settings("mae", norm_pix=True), 11, self.clean, tempfile.mkdtemp())
                # Within one 8-bit level (float32 rounding at a level's edge).
                difference = read_png(snap["files"]["reconstruction"]).astype(np.int64) - strip(self.clean).astype(np.int64)
                self.assertLessEqual(int(np.abs(difference).max()), 1)


if __name__ == "__main__":
    unittest.main()
