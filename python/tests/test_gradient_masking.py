"""The PyTorch engine's gradient-masking checks (gradient_masking.py) on tiny models where each must fire
(quantised input: zero gradients, attacks cannot move; noise in the forward: randomised) and where none may
(a linear classifier, whose gradient is never zero and which an unbounded radius always breaks)."""
import unittest

import numpy as np
import torch

from mimir_torch.gradient_masking import masking_checks, randomness_check, unbounded_eps_check, zero_gradient_check


class GradientMaskingTest(unittest.TestCase):
    def setUp(self) -> None:
        rng = np.random.default_rng(5)
        self.n, dim, classes = 12, 4 * 4 * 3, 3
        self.w = torch.from_numpy(rng.normal(0, 1, (dim, classes))).float()
        self.b = torch.from_numpy(rng.normal(0, 0.1, classes)).float()
        self.x = torch.from_numpy(rng.uniform(0.1, 0.9, (self.n, 4, 4, 3)).astype(np.float32))
        self.y = self.linear(self.x).argmax(dim=1)

    def linear(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1) @ self.w + self.b

    def quantised(self, images: torch.Tensor) -> torch.Tensor:
        # round() has a zero derivative almost everywhere: the input gradient vanishes, the logits do not.
        return self.linear(torch.round(images * 4) / 4)

    def noisy(self, images: torch.Tensor) -> torch.Tensor:
        z = self.linear(images)
        return z + torch.randn_like(z)

    def test_a_plain_linear_model_raises_nothing(self) -> None:
        for threat in ("linf", "l2"):
            report = masking_checks(self.linear, self.x, self.y, threat)
            self.assertEqual(report["zeroGradient"], {"count": 0, "total": self.n, "fraction": 0.0, "flagged": False})
            self.assertFalse(report["randomness"]["flagged"])
            self.assertLess(report["randomness"]["maxLogitDifference"], 1e-4)
            self.assertEqual(report["unboundedEps"]["accuracy"], 0.0, threat)
            self.assertFalse(report["unboundedEps"]["flagged"])
            self.assertEqual(report["warnings"], [])
        self.assertAlmostEqual(unbounded_eps_check(self.linear, self.x, self.y, "l2")["eps"], 48 ** 0.5)

    def test_quantised_input_fires_zero_gradient_and_unbounded_radius(self) -> None:
        y = self.quantised(self.x).argmax(dim=1)
        report = masking_checks(self.quantised, self.x, y, "linf")
        self.assertEqual(report["zeroGradient"]["count"], self.n)
        self.assertTrue(report["zeroGradient"]["flagged"])
        # The attack cannot move: every example keeps its class at radius 1.
        self.assertEqual(report["unboundedEps"], {"eps": 1.0, "accuracy": 1.0, "flagged": True})
        self.assertFalse(report["randomness"]["flagged"])
        self.assertEqual(
            report["warnings"],
            [
                {"kind": "zero-gradient", "message": f"{self.n} of {self.n} examples have an all-zero input gradient: gradient-based attacks cannot move them."},
                {"kind": "unbounded-eps", "message": "With an unbounded radius the attack still leaves 100.0% accuracy, where ~0% is expected."},
            ],
        )

    def test_unbounded_radius_stops_once_every_example_is_broken(self) -> None:
        calls = {"linear": 0, "quantised": 0}

        def counted(name: str, model):
            def forward(images: torch.Tensor) -> torch.Tensor:
                calls[name] += 1
                return model(images)

            return forward

        self.assertEqual(unbounded_eps_check(counted("linear", self.linear), self.x, self.y, "linf")["accuracy"], 0.0)
        # x itself, then one iterate per step until every example was misclassified at some iterate.
        self.assertLess(calls["linear"], 10)
        y = self.quantised(self.x).argmax(dim=1)
        self.assertEqual(unbounded_eps_check(counted("quantised", self.quantised), self.x, y, "linf")["accuracy"], 1.0)
        self.assertEqual(calls["quantised"], 51)

    def test_zero_gradient_counts_only_the_stuck_examples(self) -> None:
        stuck = torch.tensor([i % 3 == 0 for i in range(self.n)])

        def partly(images: torch.Tensor) -> torch.Tensor:
            rows = stuck.reshape(-1, 1)
            return torch.where(rows, self.quantised(images), self.linear(images))

        check = zero_gradient_check(partly, self.x, self.y)
        self.assertEqual(check["count"], int(stuck.sum()))
        self.assertAlmostEqual(check["fraction"], int(stuck.sum()) / self.n)

    def test_noise_in_the_forward_fires_randomness(self) -> None:
        torch.manual_seed(0)
        check = randomness_check(self.noisy, self.x)
        self.assertTrue(check["flagged"])
        self.assertEqual(check["repeats"], 5)
        self.assertGreater(check["maxLogitDifference"], 1e-4)
        self.assertIn("randomness", [w["kind"] for w in masking_checks(self.noisy, self.x, self.y, "linf")["warnings"]])


if __name__ == "__main__":
    unittest.main()
