"""The PyTorch engine's evaluation PGD against a float64 reference written here: a linear classifier, whose
cross-entropy gradient is analytic (W^T (softmax(z) - onehot(y))), attacked under l_inf and l_2."""
import os
import struct
import tempfile
import unittest
import zlib

import numpy as np
import torch

from mimir_torch.evaluate_run import PgdSettings, pgd_robust, write_flipped_images
from mimir_torch.finetune_step import pgd_start


def reference_pgd(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, start: np.ndarray, s: PgdSettings):
    """float64 PGD from x + start: per example, whether any iterate (start and final included) is misclassified."""
    n = x.shape[0]
    flat_x = x.reshape(n, -1)

    def project(v: np.ndarray) -> np.ndarray:
        if s.threat == "linf":
            return np.clip(np.clip(v, flat_x - s.eps, flat_x + s.eps), 0.0, 1.0)
        d = v - flat_x
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        return np.clip(flat_x + d / (norm + 1e-12) * np.minimum(norm, s.eps), 0.0, 1.0)

    current = project(flat_x + start.reshape(n, -1))
    wrong = np.zeros(n, dtype=bool)
    for _ in range(s.steps):
        z = current @ w + b
        wrong |= z.argmax(axis=1) != y
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), y] -= 1.0
        g = p @ w.T  # d CE / d x, per example
        step = np.sign(g) if s.threat == "linf" else g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-12)
        current = project(current + s.alpha * step)
    wrong |= (current @ w + b).argmax(axis=1) != y
    clean = (flat_x @ w + b).argmax(axis=1) == y
    return clean & ~wrong


def read_png(path: str) -> np.ndarray:
    """An 8-bit RGB PNG of one IDAT chunk (png.py's) -> [H, W, 3] uint8."""
    with open(path, "rb") as f:
        data = f.read()
    width, height = struct.unpack(">II", data[16:24])
    (length,) = struct.unpack(">I", data[33:37])
    rows = np.frombuffer(zlib.decompress(data[41 : 41 + length]), dtype=np.uint8).reshape(height, 1 + width * 3)
    return rows[:, 1:].reshape(height, width, 3)


def as_strip(images: np.ndarray) -> np.ndarray:
    n, s = images.shape[0], images.shape[1]
    return np.floor(np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 0, 2, 3).reshape(s, n * s, 3)


class EvaluationPgdTest(unittest.TestCase):
    def setUp(self) -> None:
        rng = np.random.default_rng(3)
        self.n, self.side, self.classes = 24, 4, 3
        dim = self.side * self.side * 3
        self.w = rng.normal(0, 1, (dim, self.classes))
        self.b = rng.normal(0, 0.1, self.classes)
        self.x = rng.uniform(0.1, 0.9, (self.n, self.side, self.side, 3)).astype(np.float32)
        # Labels the model gets right, so the attack has something to flip.
        self.y = (self.x.reshape(self.n, -1).astype(np.float64) @ self.w + self.b).argmax(axis=1)
        self.ids = list(range(100, 100 + self.n))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1) @ torch.from_numpy(self.w).float() + torch.from_numpy(self.b).float()

    def check(self, threat: str, eps: float, alpha: float) -> None:
        s = PgdSettings(threat, eps, alpha, steps=10, restarts=1, random_start=True, keep="best", seed=7)
        start = pgd_start(s.seed, self.ids, self.x.shape, threat, eps, 0).numpy().astype(np.float64)
        expected = reference_pgd(self.w, self.b, self.x.astype(np.float64), self.y, start, s)
        robust, predicted, points = pgd_robust(self.forward, torch.from_numpy(self.x), torch.from_numpy(self.y), self.ids, s)
        np.testing.assert_array_equal(robust.numpy(), expected)
        # Some but not all flipped: the comparison says something.
        self.assertTrue(0 < int(expected.sum()) < self.n, f"robust {int(expected.sum())} of {self.n}")
        flipped = ~robust.numpy()
        self.assertTrue((predicted.numpy()[flipped] != self.y[flipped]).all())
        # The point returned is the one the attack found: inside the ball and given the class reported.
        given = self.forward(points).argmax(dim=1).numpy()
        np.testing.assert_array_equal(given[flipped], predicted.numpy()[flipped])
        delta = (points.numpy() - self.x).reshape(self.n, -1).astype(np.float64)
        size = np.abs(delta).max(axis=1) if threat == "linf" else np.linalg.norm(delta, axis=1)
        self.assertLessEqual(float(size.max()), eps + 1e-6)

    def test_linf_matches_float64_reference(self) -> None:
        self.check("linf", 4 / 255, 1 / 255)

    def test_l2_matches_float64_reference(self) -> None:
        self.check("l2", 0.3, 0.075)

    def test_flipped_images_are_the_attack_points(self) -> None:
        """The strips tally.ts writes: clean and adversarial images of the flipped examples, side by side, and
        0.5 + scale * delta with scale 0.5 / eps (l_inf) or 0.5 / the largest |delta| (l_2)."""
        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        for threat, eps in (("linf", 4 / 255), ("l2", 0.3)):
            s = PgdSettings(threat, eps, eps / 4, 10, 1, True, "best", 7)
            robust, _, points = pgd_robust(self.forward, x, y, self.ids, s)
            rows = np.flatnonzero(~robust.numpy())[:3]
            clean, adversarial = self.x[rows], points.numpy()[rows]
            out = tempfile.mkdtemp()
            images = write_flipped_images(out, "pgd:10/x", clean, adversarial, [self.ids[r] for r in rows], s)
            assert images is not None
            self.assertEqual(images["indices"], [self.ids[r] for r in rows])
            self.assertEqual((images["clean"], images["imageSize"]), ("pgd-10-x-clean.png", 4))
            delta = adversarial.astype(np.float64) - clean
            scale = 0.5 / eps if threat == "linf" else 0.5 / np.abs(delta).max()
            self.assertAlmostEqual(images["perturbationScale"], scale, places=5)
            folder = os.path.join(out, "flipped")
            np.testing.assert_array_equal(read_png(os.path.join(folder, images["clean"])), as_strip(clean))
            np.testing.assert_array_equal(read_png(os.path.join(folder, images["adversarial"])), as_strip(adversarial))
            shown = read_png(os.path.join(folder, images["perturbation"])).astype(np.int64)
            self.assertLessEqual(int(np.abs(shown - as_strip(0.5 + scale * delta).astype(np.int64)).max()), 1)
            # The perturbation is visible: it reaches the edge of the range somewhere.
            self.assertTrue(shown.max() >= 254 or shown.min() <= 1)
        self.assertIsNone(write_flipped_images(tempfile.mkdtemp(), "pgd20", self.x[:0], self.x[:0], [], s))

    def test_restarts_only_lower_robust_accuracy(self) -> None:
        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        one = PgdSettings("linf", 4 / 255, 1 / 255, 5, 1, True, "best", 7)
        three = PgdSettings("linf", 4 / 255, 1 / 255, 5, 3, True, "best", 7)
        r1, _, _ = pgd_robust(self.forward, x, y, self.ids, one)
        r3, _, _ = pgd_robust(self.forward, x, y, self.ids, three)
        self.assertFalse(bool((r3 & ~r1).any()))


if __name__ == "__main__":
    unittest.main()
