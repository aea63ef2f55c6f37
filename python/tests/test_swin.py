"""Swin with GreenMIM group window attention (micro size, 32 px): group attention against plain window
attention and a float64 reference, no attention across groups, the visible-token encoder, MIMIR steps."""
import unittest

import numpy as np
import torch

from mimir_torch.config import MiSettings, PretrainAttack, PretrainSettings
from mimir_torch.data.procedural import BuiltinDataset
from mimir_torch.encoders.green import GreenSwin, random_shared_active
from mimir_torch.encoders.group_window_attention import group_layout
from mimir_torch.encoders.hier_pretrain import MI_DEFAULT, hier_pretrain_step, visible_pixels
from mimir_torch.encoders.sparse_conv import active_at
from mimir_torch.encoders.swin import SWIN_SIZES, SwinBlock, SwinTransformer

MICRO = SWIN_SIZES["swin-micro"]


def scrambled_block(dim: int, heads: int, resolution: int, window: int, index: int, seed: int) -> SwinBlock:
    torch.manual_seed(seed)
    blk = SwinBlock(dim, heads, resolution, window, index, 0.0)
    with torch.no_grad():
        blk.attn.relative_position_bias_table.normal_(0, 1.0)  # a bias that matters
        blk.attn.qkv.weight.normal_(0, dim**-0.5)
    return blk


def grid_coords(keep: torch.Tensor) -> torch.Tensor:
    return keep.nonzero()


def reference_attention(blk: SwinBlock, x: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """float64: each visible token attends to the visible tokens of its own shifted window and shift
    region, with timm's relative position bias; x [T, C] are the normalised tokens."""
    attn = blk.attn
    size, ws, s = blk.resolution, blk.window_size, blk.shift_size
    heads = attn.heads
    w_qkv, b_qkv = attn.qkv.weight.detach().double().numpy(), attn.qkv.bias.detach().double().numpy()
    w_p, b_p = attn.proj.weight.detach().double().numpy(), attn.proj.bias.detach().double().numpy()
    table = attn.relative_position_bias_table.detach().double().numpy()
    t, c = x.shape
    d = c // heads
    qkv = x @ w_qkv.T + b_qkv
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
    rolled = (coords - s) % size

    def region(p: int) -> int:
        return 0 if s == 0 else int(p >= size - ws) + int(p >= size - s)

    out = np.zeros((t, c))
    for i in range(t):
        wi = tuple(rolled[i] // ws)
        ri = (region(rolled[i][0]), region(rolled[i][1]))
        js = [j for j in range(t) if tuple(rolled[j] // ws) == wi and (region(rolled[j][0]), region(rolled[j][1])) == ri]
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            logits = []
            for j in js:
                dh, dw = rolled[i] % ws - rolled[j] % ws
                logits.append(q[i, sl] @ k[j, sl] / np.sqrt(d) + table[(dh + ws - 1) * (2 * ws - 1) + (dw + ws - 1), h])
            p = np.exp(np.array(logits) - max(logits))
            p /= p.sum()
            out[i, sl] = sum(pj * v[j, sl] for pj, j in zip(p, js))
    return out @ w_p.T + b_p


class GroupWindowAttentionTest(unittest.TestCase):
    def setUp(self) -> None:
        self.gen = torch.Generator().manual_seed(0)

    def test_equals_plain_window_attention_when_nothing_is_masked(self) -> None:
        for index in (0, 1):  # unshifted, then shifted by half a window
            blk = scrambled_block(8, 2, 8, 4, index, seed=index)
            x = torch.randn(2, 8, 8, 8, generator=self.gen)
            coords = grid_coords(torch.ones(8, 8, dtype=torch.bool))
            grouped = blk.forward_groups(x.reshape(2, 64, 8), blk.layout(coords))
            torch.testing.assert_close(grouped, blk(x).reshape(2, 64, 8), rtol=1e-5, atol=1e-5)

    def test_matches_float64_reference_on_visible_tokens(self) -> None:
        for index in (0, 1):
            blk = scrambled_block(8, 2, 8, 4, index, seed=10 + index)
            active = random_shared_active(self.gen, 1, 4, 0.5)  # cells of 2x2 tokens
            keep = active_at(active, 8)[0, 0]
            coords = grid_coords(keep)
            layout = blk.layout(coords)
            x = torch.randn(1, coords.shape[0], 8, generator=self.gen)
            got = blk.attn.forward_groups(x, layout)[0].detach().double().numpy()
            ref = reference_attention(blk, x[0].double().numpy(), coords.numpy())
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)

    def test_groups_are_of_equal_size_and_hold_whole_windows(self) -> None:
        keep = active_at(random_shared_active(self.gen, 1, 4, 0.5), 16)[0, 0]
        coords = grid_coords(keep)
        layout = group_layout(coords, 16, 4, 2)
        self.assertGreater(layout.index.shape[0], 1)
        real = layout.index[layout.index < coords.shape[0]]
        self.assertEqual(sorted(real.tolist()), list(range(coords.shape[0])))  # each token once
        rolled = (coords - 2) % 16
        window = (rolled[:, 0] // 4) * 4 + rolled[:, 1] // 4
        for w in window.unique():
            self.assertEqual(len(layout.group_of[window == w].unique()), 1, "a window was split across groups")

    def test_never_attends_across_groups(self) -> None:
        # A shifted block at 16 tokens a side and an unshifted one at 8 (cells of 2x2 tokens, so windows
        # hold 4 to 16 visible tokens and groups pack several windows).
        two_windows_in_one_group = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
        two_windows_in_one_group[0, 0, [0, 0, 0, 2], [0, 1, 2, 0]] = True  # 8, 4 and 4 tokens in 3 windows at size 8
        for size, index, active in ((16, 1, random_shared_active(self.gen, 1, 4, 0.5)), (8, 0, two_windows_in_one_group)):
            blk = scrambled_block(8, 2, size, 4, index, seed=3)
            keep = active_at(active, size)[0, 0]
            coords = grid_coords(keep)
            layout = blk.layout(coords)
            x = torch.randn(1, coords.shape[0], 8, generator=self.gen)
            before = blk.forward_groups(x, layout)
            for other in range(layout.index.shape[0]):
                theirs = layout.group_of == other
                perturbed = x.clone()
                perturbed[0, theirs] += 10.0 * torch.randn(int(theirs.sum()), 8, generator=self.gen)
                after = blk.forward_groups(perturbed, layout)
                self.assertTrue(torch.equal(after[0, ~theirs], before[0, ~theirs]), f"perturbing group {other} changed another group")
            # Nor across windows packed into one group: perturb each window, every other token unchanged.
            rolled = (coords - blk.shift_size) % size
            window = (rolled[:, 0] // 4) * (size // 4) + rolled[:, 1] // 4
            shared = [g for g in range(layout.index.shape[0]) if len(window[layout.group_of == g].unique()) > 1]
            self.assertTrue(shared, "the layout should pack several windows into some group")
            for g in shared:
                for w in window[layout.group_of == g].unique():
                    perturbed = x.clone()
                    perturbed[0, window == w] += 10.0
                    after = blk.forward_groups(perturbed, layout)
                    self.assertTrue(torch.equal(after[0, window != w], before[0, window != w]), f"window {int(w)} leaked")
                    self.assertFalse(torch.equal(after[0, window == w], before[0, window == w]))


def settings(mode: str, lam: float = 0.02, steps: int = 1) -> PretrainSettings:
    return PretrainSettings(
        mode=mode,
        mask_ratio=0.75,
        norm_pix_loss=True,
        attack=PretrainAttack(steps=steps, eps=8.0, alpha=2.0, perturb="visible", attack_mask="shared"),
        mi=MiSettings(estimator="nhsic", sigma=5.0, bandwidth="fixed", alpha=1.01, eps_r=1e-8, lam=lam, token_order="spatial"),
    )


class GreenSwinTest(unittest.TestCase):
    def setUp(self) -> None:
        torch.manual_seed(4)
        self.model = GreenSwin(SwinTransformer(MICRO, num_classes=10), decoder_width=32, decoder_depth=1, decoder_heads=2)
        self.gen = torch.Generator().manual_seed(6)
        x, _ = BuiltinDataset("train", 1000, 0, 10, 32).batch(list(range(8)))
        self.images = torch.from_numpy(x).float()
        self.active = random_shared_active(self.gen, 8, self.model.mask_grid_for(32), 0.75)

    def test_all_visible_equals_the_dense_encoder(self) -> None:
        encoder = self.model.encoder
        x = torch.rand(2, 3, 32, 32, generator=self.gen)
        tokens, coords = encoder.forward_visible(x, torch.ones(2, 1, 4, 4, dtype=torch.bool))
        self.assertEqual(coords.shape[0], 16)
        torch.testing.assert_close(tokens, encoder.forward_features(x).reshape(2, 16, -1), rtol=1e-5, atol=1e-5)

    def test_masked_pixels_never_reach_the_encoder(self) -> None:
        encoder = self.model.encoder
        x = self.images.permute(0, 3, 1, 2)
        noise = torch.rand(x.shape, generator=self.gen) * (~active_at(self.active, 32)).float()
        a, _ = encoder.forward_visible(x, self.active)
        b, _ = encoder.forward_visible(x + noise, self.active)
        self.assertTrue(torch.equal(a, b))
        self.assertEqual(a.shape[1], 4)  # 4 of 16 cells visible at the last stage

    def test_per_sample_masks_are_refused(self) -> None:
        different = torch.stack([random_shared_active(self.gen, 1, 4, 0.75)[0] for _ in range(8)])
        while torch.equal(different, different[:1].expand_as(different)):
            different = torch.stack([random_shared_active(self.gen, 1, 4, 0.75)[0] for _ in range(8)])
        with self.assertRaisesRegex(ValueError, "one mask for the whole batch"):
            self.model.forward_loss(self.images, self.images, different, True)

    def test_mimir_step_attacks_visible_pixels_and_pretraining_lowers_the_loss(self) -> None:
        start = (torch.rand(self.images.shape, generator=self.gen) * 2 - 1) * 8 / 255
        run = settings("mimir")
        optimiser = torch.optim.AdamW(list(self.model.parameters()), lr=2e-3)
        losses = []
        for _ in range(12):
            result = hier_pretrain_step(self.model, run, self.images, self.active, start, MI_DEFAULT["swin"], lambda: self.active)
            delta = result.adversarial - self.images
            self.assertLessEqual(float(delta.abs().max()), 8 / 255 + 1e-6)
            self.assertTrue(torch.all(delta * (1 - visible_pixels(self.active, 32)) == 0))
            self.assertGreater(float(result.mi), 0.0)
            for name, p in self.model.named_parameters():
                p.grad = result.grads[name]
            optimiser.step()
            losses.append(float(result.recon))
        self.assertLess(losses[-1], 0.95 * losses[0], f"losses {losses}")


class SwinClassifierTest(unittest.TestCase):
    def test_relative_position_bias_is_used_by_the_dense_forward(self) -> None:
        torch.manual_seed(7)
        model = SwinTransformer(MICRO, num_classes=10).eval()
        x = torch.rand(2, 3, 32, 32)
        before = model(x)
        with torch.no_grad():
            model.layers[0].blocks[0].attn.relative_position_bias_table.add_(1.0 * torch.randn(49, 1))
        self.assertFalse(torch.allclose(before, model(x)))


if __name__ == "__main__":
    unittest.main()
