"""Gradient-masking checks on the PyTorch engine, as src/engine/attacks/masking-checks.ts defines them (same
fields, thresholds and sentences; the report's GradientMaskingReport): all-zero input gradients, outputs that
change between runs on the same input, and accuracy left under an unbounded radius. The black-box check needs
Square, which this engine does not run, so it is never in a torch report."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from .apgd_train import apgd_highest_loss

Forward = Callable[[torch.Tensor], torch.Tensor]


def zero_gradient_check(forward: Forward, x: torch.Tensor, y: torch.Tensor) -> Dict[str, Any]:
    """Examples whose input gradient of the cross-entropy is exactly zero everywhere."""
    v = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(forward(v), y, reduction="sum"), [v])
    count = int((grad.abs().reshape(grad.shape[0], -1).sum(dim=1) == 0).sum())
    total = int(x.shape[0])
    return {"count": count, "total": total, "fraction": count / max(total, 1), "flagged": count > 0}


def randomness_check(forward: Forward, x: torch.Tensor, repeats: int = 5, tolerance: float = 1e-4) -> Dict[str, Any]:
    """The same inputs several times: logits scaled to unit l_2 norm per row, flagged above 1e-4 apart (checks.py)."""
    outputs: List[torch.Tensor] = []
    preds: List[torch.Tensor] = []
    with torch.no_grad():
        for _ in range(repeats):
            z = forward(x).double()
            preds.append(z.argmax(dim=1))
            outputs.append(z / (z.norm(dim=1, keepdim=True) + 1e-10))
    largest = 0.0
    for a in range(repeats):
        for b in range(a + 1, repeats):
            largest = max(largest, float((outputs[a] - outputs[b]).norm(dim=1).max()))
    changed = any(bool((p != preds[0]).any()) for p in preds)
    return {"repeats": repeats, "maxLogitDifference": largest, "predictionsChanged": changed, "flagged": changed or largest > tolerance}


def unbounded_eps_check(forward: Forward, x: torch.Tensor, y: torch.Tensor, threat: str, iterations: int = 50, max_accuracy: float = 0.01) -> Dict[str, Any]:
    """With a radius covering the whole image box (1 under l_inf, the box diagonal under l_2) a working gradient
    attack leaves ~0% accuracy. APGD-CE, 50 iterations, an example counting as robust only if correctly
    classified at every iterate, as the tfjs check (apgd.ts); APGD-AT's loop here (apgd_train.py: started at x
    rather than at a random point), ended once every example has been misclassified."""
    eps = 1.0 if threat == "linf" else math.sqrt(x[0].numel())
    robust = torch.ones(int(x.shape[0]), dtype=torch.bool, device=x.device)

    def observe(logits: torch.Tensor) -> bool:
        robust.copy_(robust & (logits.argmax(dim=1) == y))
        return not bool(robust.any())

    apgd_highest_loss(forward, x, y, eps, iterations, 0.75, threat, observe)
    accuracy = int(robust.sum()) / max(int(x.shape[0]), 1)
    return {"eps": eps, "accuracy": accuracy, "flagged": accuracy > max_accuracy}


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def masking_warnings(zero_gradient: Optional[Mapping[str, Any]], randomness: Optional[Mapping[str, Any]], unbounded_eps: Optional[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """A sentence per flagged check, word for word masking-checks.ts maskingWarnings."""
    warnings: List[Dict[str, str]] = []
    if zero_gradient and zero_gradient["flagged"]:
        warnings.append({"kind": "zero-gradient", "message": f"{zero_gradient['count']} of {zero_gradient['total']} examples have an all-zero input gradient: gradient-based attacks cannot move them."})
    if randomness and randomness["flagged"]:
        warnings.append({"kind": "randomness", "message": "The model gives different outputs for the same input: it looks randomised; use an attack with expectation over transformation."})
    if unbounded_eps and unbounded_eps["flagged"]:
        warnings.append({"kind": "unbounded-eps", "message": f"With an unbounded radius the attack still leaves {_pct(unbounded_eps['accuracy'])} accuracy, where ~0% is expected."})
    return warnings


def masking_checks(forward: Forward, x: torch.Tensor, y: torch.Tensor, threat: str) -> Dict[str, Any]:
    """The three checks on one batch, in the report's shape (without its `examples`)."""
    zero_gradient = zero_gradient_check(forward, x, y)
    randomness = randomness_check(forward, x)
    unbounded_eps = unbounded_eps_check(forward, x, y, threat)
    return {"zeroGradient": zero_gradient, "randomness": randomness, "unboundedEps": unbounded_eps, "warnings": masking_warnings(zero_gradient, randomness, unbounded_eps)}
