"""ConvNeXt with SparK-style sparse masked pre-training: the sparse forward, the densifying decoder's loss
against a float64 reference, and MIMIR steps (micro size, 32 px)."""
import unittest

import numpy as np
import torch

from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.config import MiSettings, PretrainAttack, PretrainSettings
from mimir_torch.encoders.convnext import CONVNEXT_SIZES, ConvNeXt
from mimir_torch.encoders.hier_pretrain import MI_DEFAULT, hier_pretrain_step, visible_pixels
from mimir_torch.encoders.sparse_conv import active_at
from mimir_torch.encoders.spark import SparKConvNeXt, masked_unit_loss, pool_visible, random_active

MICRO = CONVNEXT_SIZES["convnext-micro"]


def micro_model(seed: int = 0) -> SparKConvNeXt:
    torch.manual_seed(seed)
    encoder = ConvNeXt(MICRO, num_classes=10, ls_init_value=0.5)  # gamma 0.5: blocks that matter
    return SparKConvNeXt(encoder, decoder_width=32)


def settings(mode: str, perturb: str = "visible", lam: float = 0.02, steps: int = 2) -> PretrainSettings:
    return PretrainSettings(
        mode=mode,
        mask_ratio=0.75,
        norm_pix_loss=True,
        attack=PretrainAttack(steps=steps, eps=8.0, alpha=2.0, perturb=perturb, attack_mask="shared"),
        mi=MiSettings(estimator="nhsic", sigma=5.0, bandwidth="fixed", alpha=1.01, eps_r=1e-8, lam=lam, token_order="spatial"),
    )


class SparseForwardTest(unittest.TestCase):
    def setUp(self) -> None:
        self.model = micro_model()
        self.gen = torch.Generator().manual_seed(1)
        self.images = torch.rand(4, 32, 32, 3, generator=self.gen)
        self.grid = self.model.mask_grid_for(32)
        self.active = random_active(self.gen, 4, self.grid, 0.75)

    def test_mask_unit_and_grid(self) -> None:
        self.assertEqual(self.model.encoder.total_stride, 8)
        self.assertEqual(self.grid, 4)
        self.assertEqual(self.active.reshape(4, -1).sum(dim=1).tolist(), [4, 4, 4, 4])
        with self.assertRaisesRegex(ValueError, "mask units"):
            self.model.mask_grid_for(36)

    def test_masked_positions_stay_zero_and_never_leak(self) -> None:
        feats = self.model.encode(self.images, self.active)
        for f in feats:
            hidden = ~active_at(self.active, f.shape[-1]).expand_as(f)
            self.assertTrue(torch.all(f[hidden] == 0), "features at masked positions must be exactly zero")
            self.assertTrue(torch.any(f[~hidden] != 0))
        noise = torch.rand(self.images.shape, generator=self.gen) * (1 - visible_pixels(self.active, 32))
        changed = self.model.encode(self.images + noise, self.active)
        for a, b in zip(feats, changed):
            self.assertTrue(torch.equal(a, b), "pixels of masked cells must not reach any stage")

    def test_all_visible_sparse_forward_equals_dense(self) -> None:
        everything = torch.ones(4, 1, self.grid, self.grid, dtype=torch.bool)
        x = self.images.permute(0, 3, 1, 2)
        for sparse, dense in zip(self.model.encoder.forward_stages(x, everything), self.model.encoder.forward_stages(x)):
            torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)

    def test_loss_on_masked_units_matches_float64_reference(self) -> None:
        pred = torch.randn(4, 32, 32, 3, generator=self.gen)
        target = torch.rand(4, 32, 32, 3, generator=self.gen)
        got = float(masked_unit_loss(pred, target, self.active, 8, norm_pix=True))
        p, t, a = pred.double().numpy(), target.double().numpy(), self.active.numpy()[:, 0]
        total, count = 0.0, 0
        for n in range(4):
            for i in range(4):
                for j in range(4):
                    if a[n, i, j]:
                        continue  # visible units carry no loss
                    tu = t[n, i * 8 : i * 8 + 8, j * 8 : j * 8 + 8].reshape(-1)
                    tu = (tu - tu.mean()) / np.sqrt(tu.var(ddof=1) + 1e-6)
                    pu = p[n, i * 8 : i * 8 + 8, j * 8 : j * 8 + 8].reshape(-1)
                    total += ((pu - tu) ** 2).mean()
                    count += 1
        self.assertAlmostEqual(got, total / count, delta=1e-5 * total / count)

    def test_pooled_mi_features_average_visible_cells(self) -> None:
        last = self.model.encode(self.images, self.active)[-1]
        pooled = pool_visible(last, self.active).detach().double().numpy()
        f, a = last.detach().double().numpy(), self.active.numpy()[:, 0]
        ref = np.stack([f[n][:, a[n]].mean(axis=1) for n in range(4)])
        np.testing.assert_allclose(pooled, ref, rtol=1e-5, atol=1e-6)


class MimirStepTest(unittest.TestCase):
    def setUp(self) -> None:
        self.model = micro_model(2)
        self.gen = torch.Generator().manual_seed(5)
        self.images = torch.rand(8, 32, 32, 3, generator=self.gen)
        self.active = random_active(self.gen, 8, 4, 0.75)
        self.start = (torch.rand(self.images.shape, generator=self.gen) * 2 - 1) * 8 / 255

    def step(self, run: PretrainSettings):
        return hier_pretrain_step(self.model, run, self.images, self.active, self.start, MI_DEFAULT["convnext"], lambda: self.active)

    def test_attack_stays_on_visible_cells_in_the_eps_ball_and_raises_the_loss(self) -> None:
        clean = self.step(settings("mae"))
        result = self.step(settings("mimir", steps=3))
        delta = result.adversarial - self.images
        self.assertLessEqual(float(delta.abs().max()), 8 / 255 + 1e-6)
        self.assertTrue(torch.all(delta * (1 - visible_pixels(self.active, 32)) == 0))
        self.assertGreater(float(delta.abs().max()), 0.0)
        self.assertGreater(float(result.recon), float(clean.recon))
        self.assertTrue(all(torch.isfinite(g).all() for g in result.grads.values()))
        self.assertGreater(float(result.mi), 0.0)
        self.assertAlmostEqual(float(result.loss), float(result.recon) + 0.02 * float(result.mi), delta=1e-5)

    def test_mi_penalty_gradient_reaches_the_encoder(self) -> None:
        with_mi = self.step(settings("mimir", lam=10.0, steps=1))
        without = self.step(settings("adv-mae", steps=1))
        name = "encoder.stages.3.blocks.0.mlp.fc2.weight"
        g1, g0 = with_mi.grads[name], without.grads[name]
        self.assertGreater(float((g1 - g0).norm()), 1e-3 * float(g0.norm()))
        # The decoder's head does not feed MI: its gradient is the same.
        torch.testing.assert_close(with_mi.grads["pred.weight"], without.grads["pred.weight"], rtol=1e-4, atol=1e-7)

    def test_pretraining_lowers_the_reconstruction_loss(self) -> None:
        # Images with structure to predict (the built-in dataset's shapes and textures), one batch and mask.
        x, _ = BuiltinDataset("train", 1000, 0, 10, 32).batch(list(range(8)))
        self.images = torch.from_numpy(x).float()
        run = settings("mimir", steps=1)
        params = [p for p in self.model.parameters()]
        optimiser = torch.optim.AdamW(params, lr=2e-3)
        first = last = None
        for _ in range(12):
            result = self.step(run)
            for p, (name, _) in zip(params, self.model.named_parameters()):
                p.grad = result.grads[name]
            optimiser.step()
            first = first if first is not None else float(result.recon)
            last = float(result.recon)
        self.assertLess(last, 0.95 * first)


class ClassifierTest(unittest.TestCase):
    def test_dense_classifier_logits_and_gradients(self) -> None:
        model = micro_model(3).encoder
        x = torch.rand(2, 3, 32, 32, requires_grad=True)
        logits = model(x)
        self.assertEqual(list(logits.shape), [2, 10])
        logits.sum().backward()
        self.assertGreater(float(x.grad.abs().sum()), 0.0)


if __name__ == "__main__":
    unittest.main()
