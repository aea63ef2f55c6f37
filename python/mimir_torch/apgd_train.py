"""APGD-CE as APGD-AT trains on it (src/engine/attacks/apgd.ts apgdHighestLoss; Singh et al.'s
apgd_train): every example attacked from x itself, step 2 eps, momentum 0.75, AutoAttack's checkpoints,
and each example's highest-loss iterate x_best returned."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .finetune_step import project, soft_cross_entropy, steepest_direction


def apgd_checkpoints(iterations: int) -> List[Tuple[int, int]]:
    """(0-based iteration after which the step is checked, iterations since the previous check), as
    apgd.ts apgdCheckpoints: first after max(floor(0.22 N), 1), intervals shrinking by max(floor(0.03 N), 1)
    down to max(floor(0.06 N), 1)."""
    low = max(int(0.06 * iterations), 1)
    decrease = max(int(0.03 * iterations), 1)
    points: List[Tuple[int, int]] = []
    interval = max(int(0.22 * iterations), 1)
    at = interval - 1
    while at < iterations:
        points.append((at, interval))
        interval = max(interval - decrease, low)
        at += interval
    return points


def apgd_highest_loss(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    iterations: int,
    rho: float,
    threat: str,
    observe: Optional[Callable[[torch.Tensor], bool]] = None,
) -> torch.Tensor:
    """`observe`, when given, sees the logits of every iterate (x itself first) and ends the attack early by
    returning True (the gradient-masking check stops once every example has been misclassified)."""
    n = x.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"APGD-AT: {labels.shape[0]} labels for {n} images; give one label per image")
    checks: Dict[int, int] = dict(apgd_checkpoints(iterations))

    stopped = False

    def loss_and_gradient(v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        nonlocal stopped
        v = v.detach().requires_grad_(True)
        z = forward(v)
        if observe is not None:
            stopped = observe(z.detach()) or stopped
        y = torch.nn.functional.one_hot(labels.long(), z.shape[1]).to(z.dtype)
        loss = soft_cross_entropy(z, y)
        (grad,) = torch.autograd.grad(loss.sum(), [v])
        return loss.detach(), grad

    x_adv = torch.clamp(x.detach(), 0.0, 1.0)
    x_best = x_adv.clone()
    loss_best, grad = loss_and_gradient(x_adv)
    grad_best = grad.clone()
    step = torch.full((n, 1, 1, 1), 2 * eps, dtype=x.dtype, device=x.device)
    x_old = x_adv.clone()
    # AutoAttack compares the first step with row -1 of this zero-initialised buffer: it wraps here too.
    loss_steps = torch.zeros((iterations, n), dtype=x.dtype, device=x.device)
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(n, dtype=torch.bool, device=x.device)
    for i in range(iterations):
        if stopped:
            break
        a = 0.75 if i > 0 else 1.0
        momentum = x_adv - x_old
        z = project(x, x_adv + step * steepest_direction(grad, threat), eps, threat)
        x_old, x_adv = x_adv, project(x, x_adv + (z - x_adv) * a + momentum * (1 - a), eps, threat)
        loss, grad = loss_and_gradient(x_adv)
        loss_steps[i] = loss
        improved = loss > loss_best
        rows = improved.reshape(-1, 1, 1, 1)
        x_best = torch.where(rows, x_adv, x_best)
        grad_best = torch.where(rows, grad, grad_best)
        loss_best = torch.where(improved, loss, loss_best)
        k = checks.get(i)
        if k is None:
            continue
        increases = torch.zeros(n, dtype=torch.int64, device=x.device)
        for c in range(k):
            now = loss_steps[i - c] if i - c >= 0 else torch.zeros_like(loss)
            increases += (now > loss_steps[(i - c - 1 + iterations) % iterations]).long()
        # The count is an integer: at most k rho is at most floor(k rho), compared exactly (as apgd.ts).
        reduce = (increases <= math.floor(k * rho)) | (~reduced_last_check & (loss_best_last_check >= loss_best))
        reduced_last_check = reduce
        loss_best_last_check = loss_best.clone()
        # Applied to every row under the mask, never tested with reduce.any(): nothing is read back.
        rows = reduce.reshape(-1, 1, 1, 1)
        step = torch.where(rows, step / 2, step)
        x_adv = torch.where(rows, x_best, x_adv)
        grad = torch.where(rows, grad_best, grad)
    return x_best.detach()
