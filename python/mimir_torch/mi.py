"""The MI estimators of spec section 4, as src/engine/mi computes them (same kernels, the same
float32 / float64 split), differentiable through autograd: hsic, nhsic, renyi; fixed or median bandwidth.
"""
from __future__ import annotations

import math

import torch

from .config import MiSettings


def flatten_samples(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 0:
        raise ValueError("MI: a feature tensor needs a sample axis (got a scalar).")
    return x.reshape(x.shape[0], -1).float()


def _pair(a: torch.Tensor, b: torch.Tensor):
    fa, fb = flatten_samples(a), flatten_samples(b)
    n = fa.shape[0]
    if fb.shape[0] != n:
        raise ValueError(f"MI: the inputs pair {n} and {fb.shape[0]} samples; they must have as many.")
    if n < 2:
        raise ValueError(f"MI: needs at least 2 samples, got {n}.")
    return fa, fb, n


def median_squared_distance(neg_half_dist: torch.Tensor) -> float:
    """Median of ||x_i - x_j||^2 over i < j (float64); the mean when that is 0, then 1 (kernels.ts)."""
    n = neg_half_dist.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1)
    pairs = -2.0 * neg_half_dist.detach()[rows, cols].double()
    if pairs.numel() == 0:
        return 1.0
    if not torch.isfinite(pairs).all():
        raise ValueError("MI: the features are not finite (NaN or infinity).")
    ordered = torch.sort(pairs).values
    count = ordered.numel()
    mid = count >> 1
    median = float(ordered[mid]) if count % 2 == 1 else 0.5 * (float(ordered[mid - 1]) + float(ordered[mid]))
    if median > 0:
        return median
    mean = float(pairs.sum()) / count
    return mean if mean > 0 else 1.0


def gaussian_kernel_exponent(x: torch.Tensor, s: MiSettings) -> torch.Tensor:
    """E with K = exp(E): E_ij = -||x_i - x_j||^2 / (2 s^2), s^2 = sigma^2 d or the batch's median squared distance."""
    n, d = x.shape
    centred = x - x.mean(dim=0, keepdim=True)
    half_sq = 0.5 * (centred * centred).sum(dim=1, keepdim=True)
    neg_half_dist = torch.clamp_max(centred @ centred.t() - half_sq - half_sq.reshape(1, n), 0.0)
    s2 = median_squared_distance(neg_half_dist) if s.bandwidth == "median" else s.sigma * s.sigma * d
    off_diagonal = 1.0 - torch.eye(n, device=x.device, dtype=x.dtype)
    return neg_half_dist * (off_diagonal * (1.0 / s2))


def double_centre(m: torch.Tensor) -> torch.Tensor:
    """H M H, H = I - 1 1^T / N."""
    return m - m.mean(dim=1, keepdim=True) - m.mean(dim=0, keepdim=True) + m.mean()


def hsic(a: torch.Tensor, b: torch.Tensor, s: MiSettings) -> torch.Tensor:
    """Biased HSIC tr(K_A H K_B H) / N^2 (paper Eq. 29)."""
    fa, fb, n = _pair(a, b)
    ca = double_centre(torch.expm1(gaussian_kernel_exponent(fa, s)))
    cb = double_centre(torch.expm1(gaussian_kernel_exponent(fb, s)))
    return (ca * cb).sum() / (n * n)


def regularised_projection(k: torch.Tensor, c: float) -> torch.Tensor:
    """R = K (K + c I)^-1 = I - c (K + c I)^-1, inverted in float64 (as linalg-ops.ts), returned float32."""
    n = k.shape[0]
    eye = torch.eye(n, dtype=torch.float64, device=k.device)
    return (eye - c * torch.linalg.inv(k.double() + c * eye)).float()


def nhsic(a: torch.Tensor, b: torch.Tensor, s: MiSettings) -> torch.Tensor:
    """The authors' normalised HSIC tr(R_A R_B), computed on the symmetric R~ = C (C + epsR N I)^-1, C = H K H
    (the same number; see mutual-information.ts)."""
    fa, fb, n = _pair(a, b)
    ridge = s.eps_r * n

    def project(f: torch.Tensor) -> torch.Tensor:
        return regularised_projection(double_centre(torch.expm1(gaussian_kernel_exponent(f, s))), ridge)

    return (project(fa) * project(fb).t()).sum()


_NOISE_FLOOR = 2.0**-24


class _RenyiEntropy(torch.autograd.Function):
    """Matrix-based Renyi alpha-entropy of K = shifted + 1 1^T normalised by its trace (linalg-ops.ts's
    renyiEntropyOfShiftedKernel): float64 eigendecomposition, the same gradient V diag(u) V^T with the
    eigenvalues floored at 2^-24 lambda_max."""

    @staticmethod
    def forward(ctx, shifted: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        if not torch.isfinite(shifted).all():
            raise ValueError("renyiEntropy: the input is not finite (NaN or infinity in the features?).")
        s = shifted.double()
        k = 1.0 + 0.5 * (s + s.t())
        trace = float(torch.diagonal(k).sum())
        if not trace > 0:
            raise ValueError("renyiEntropy: the kernel matrix has a non-positive trace.")
        k = k / trace
        lambdas, vectors = torch.linalg.eigh(k)
        positive = lambdas[lambdas > 0]
        total = float((positive**alpha).sum())
        entropy = math.log(total) / math.log(2.0) / (1.0 - alpha)
        ctx.save_for_backward(lambdas, vectors)
        ctx.alpha, ctx.total, ctx.trace = alpha, total, trace
        return torch.tensor(entropy, dtype=shifted.dtype, device=shifted.device)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        lambdas, vectors = ctx.saved_tensors
        alpha, total, trace = ctx.alpha, ctx.total, ctx.trace
        floor = _NOISE_FLOOR * max(float(lambdas[-1]), 0.0)
        clamped = torch.clamp_min(lambdas, floor)
        u = (alpha * clamped ** (alpha - 1) - alpha * total) / ((1.0 - alpha) * total * trace * math.log(2.0))
        grad = (vectors * u.reshape(1, -1)) @ vectors.t()
        return (grad * dy.double()).to(dy.dtype), None


def renyi_entropy_of_shifted_kernel(shifted: torch.Tensor, alpha: float) -> torch.Tensor:
    if not alpha > 1:
        raise ValueError(f"renyiEntropy: alpha must be above 1, got {alpha}.")
    return _RenyiEntropy.apply(shifted, alpha)


def renyi_mutual_information(a: torch.Tensor, b: torch.Tensor, s: MiSettings) -> torch.Tensor:
    """H(A) + H(B) - H(A, B) in bits, the joint from the Hadamard product K_A o K_B = exp(E_A + E_B)."""
    fa, fb, _ = _pair(a, b)
    ea, eb = gaussian_kernel_exponent(fa, s), gaussian_kernel_exponent(fb, s)

    def entropy(e: torch.Tensor) -> torch.Tensor:
        return renyi_entropy_of_shifted_kernel(torch.expm1(e), s.alpha)

    return entropy(ea) + entropy(eb) - entropy(ea + eb)


def mutual_information(a: torch.Tensor, b: torch.Tensor, s: MiSettings) -> torch.Tensor:
    """The estimate of MI(A; B) by s.estimator, a differentiable scalar. Always float32 (float64 inside),
    outside any autocast: bf16 distances would drown the kernels' small differences."""
    if torch.is_autocast_enabled():
        with torch.autocast("cuda", enabled=False):
            return mutual_information(a.float(), b.float(), s)
    if s.estimator == "hsic":
        return hsic(a, b, s)
    if s.estimator == "nhsic":
        return nhsic(a, b, s)
    if s.estimator == "renyi":
        return renyi_mutual_information(a, b, s)
    raise ValueError(f'MI: unknown estimator "{s.estimator}".')
