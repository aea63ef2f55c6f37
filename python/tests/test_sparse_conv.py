"""Sparse convolution pieces (SparK): against float64 references written here with numpy."""
import unittest

import numpy as np
import torch
import torch.nn as nn

from mimir_torch.encoders.sparse_conv import SparseBatchNorm2d, active_at, sparse_conv, sparse_layer_norm


def coarse_mask(generator: torch.Generator, n: int, g: int) -> torch.Tensor:
    """bool [n, 1, g, g] with at least one visible and one masked cell per sample."""
    while True:
        active = torch.rand(n, 1, g, g, generator=generator) < 0.5
        flat = active.reshape(n, -1)
        if bool(flat.any(dim=1).all()) and bool((~flat).any(dim=1).all()):
            return active


def upsample_np(active: np.ndarray, size: int) -> np.ndarray:
    """[n, 1, g, g] -> [n, size, size] by cell: pixel (i, j) belongs to cell (i * g // size, j * g // size)."""
    n, _, g, _ = active.shape
    cell = np.arange(size) * g // size
    return active[:, 0][:, cell][:, :, cell]


def conv2d_np(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """Direct float64 convolution, x [N, C, H, W], w [O, C/groups, k, k]."""
    n, c, h, _ = x.shape
    o, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_size = (h + 2 * pad - k) // stride + 1
    y = np.zeros((n, o, out_size, out_size))
    og = o // groups
    for oc in range(o):
        g0 = (oc // og) * cg
        for i in range(out_size):
            for j in range(out_size):
                patch = xp[:, g0 : g0 + cg, i * stride : i * stride + k, j * stride : j * stride + k]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
    return y


class SparseConvTest(unittest.TestCase):
    def setUp(self) -> None:
        self.gen = torch.Generator().manual_seed(0)

    def check_conv(self, conv: nn.Conv2d, size: int, g: int) -> None:
        x = torch.randn(2, conv.in_channels, size, size, generator=self.gen)
        active = coarse_mask(self.gen, 2, g)
        y = sparse_conv(conv, x, active).detach().double().numpy()

        keep_in = upsample_np(active.numpy(), size)[:, None]
        w, b = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
        ref = conv2d_np(x.double().numpy() * keep_in, w, b, conv.stride[0], conv.padding[0], conv.groups)
        keep_out = upsample_np(active.numpy(), ref.shape[-1])[:, None]
        visible = np.broadcast_to(keep_out, ref.shape)
        # Visible outputs: the dense convolution of the input with masked positions zeroed.
        np.testing.assert_allclose(y[visible], ref[visible], rtol=1e-5, atol=1e-5)
        # Masked outputs: exactly zero.
        self.assertTrue(np.all(y[~visible] == 0.0))
        # Nothing at masked positions reaches the output.
        noisy = x + 100.0 * torch.randn(x.shape, generator=self.gen) * (~active_at(active, size)).float()
        self.assertTrue(torch.equal(sparse_conv(conv, noisy, active), sparse_conv(conv, x, active)))

    def test_depthwise_7x7_equals_dense_conv_on_visible_positions(self) -> None:
        torch.manual_seed(1)
        self.check_conv(nn.Conv2d(3, 3, 7, padding=3, groups=3), size=8, g=4)

    def test_stem_and_downsampling_convs(self) -> None:
        torch.manual_seed(2)
        self.check_conv(nn.Conv2d(3, 5, 4, stride=4), size=16, g=2)  # a 4x4 stem, mask unit 8 px
        self.check_conv(nn.Conv2d(4, 6, 2, stride=2), size=8, g=2)  # a stage's downsampling

    def test_mask_with_wrong_grid_is_refused(self) -> None:
        with self.assertRaisesRegex(ValueError, "does not split"):
            active_at(torch.ones(1, 1, 3, 3, dtype=torch.bool), 8)


class SparseNormTest(unittest.TestCase):
    def setUp(self) -> None:
        self.gen = torch.Generator().manual_seed(3)

    def test_batch_norm_statistics_come_from_visible_positions_only(self) -> None:
        bn = SparseBatchNorm2d(4, momentum=0.1)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
            bn.bias.copy_(torch.tensor([0.0, 0.1, -0.2, 0.3]))
        x = torch.randn(3, 4, 8, 8, generator=self.gen) * 2 + 1
        active = coarse_mask(self.gen, 3, 4)
        x_masked_noise = x + 50.0 * (~active_at(active, 8)).float()  # masked values far from the visible ones
        y = bn(x_masked_noise, active).detach().double().numpy()

        keep = upsample_np(active.numpy(), 8)  # [N, H, W]
        xs = x.double().numpy().transpose(0, 2, 3, 1)[keep]  # [M, C] visible rows
        mean, var = xs.mean(axis=0), xs.var(axis=0)
        w, b = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
        ref = (xs - mean) / np.sqrt(var + bn.eps) * w + b
        got = y.transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got[keep], ref, rtol=1e-5, atol=1e-5)
        self.assertTrue(np.all(got[~keep] == 0.0))
        # Running estimates: momentum 0.1 from (0, 1) toward the visible mean and unbiased variance.
        m = xs.shape[0]
        np.testing.assert_allclose(bn.running_mean.double().numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var.double().numpy(), 0.9 + 0.1 * var * m / (m - 1), rtol=1e-5)

    def test_layer_norm_over_visible_positions(self) -> None:
        norm = nn.LayerNorm(6, eps=1e-6)
        with torch.no_grad():
            norm.weight.copy_(torch.linspace(0.5, 1.5, 6))
            norm.bias.copy_(torch.linspace(-0.3, 0.3, 6))
        x = torch.randn(2, 8, 8, 6, generator=self.gen)  # channels last, as ConvNeXt's block norm
        active = coarse_mask(self.gen, 2, 2)
        y = sparse_layer_norm(norm, x, active, channels_last=True).detach().double().numpy()
        keep = upsample_np(active.numpy(), 8)
        rows = x.double().numpy()[keep]
        ref = (rows - rows.mean(-1, keepdims=True)) / np.sqrt(rows.var(-1, keepdims=True) + 1e-6)
        ref = ref * norm.weight.detach().double().numpy() + norm.bias.detach().double().numpy()
        np.testing.assert_allclose(y[keep], ref, rtol=1e-5, atol=1e-5)
        self.assertTrue(np.all(y[~keep] == 0.0))

    def test_gradients_never_reach_masked_positions(self) -> None:
        conv = nn.Conv2d(2, 2, 3, padding=1)
        bn = SparseBatchNorm2d(2)
        x = torch.randn(2, 2, 8, 8, generator=self.gen, requires_grad=True)
        active = coarse_mask(self.gen, 2, 2)
        (bn(sparse_conv(conv, x, active), active) ** 2).sum().backward()
        hidden = ~active_at(active, 8).expand_as(x)
        self.assertTrue(torch.all(x.grad[hidden] == 0))
        self.assertTrue(torch.any(x.grad[~hidden] != 0))


if __name__ == "__main__":
    unittest.main()
