"""One fine-tuning step (spec section 5) as src/engine/finetune/step.ts: adversarial examples made with
the classifier in evaluation mode (no drop path, weights as constants), then the method's loss in
train mode (drop path) and its gradients w.r.t. every parameter. Methods: natural, pgd-at, fast-at,
trades, mart, dbat, apgd-at (generalist's two learners: generalist.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from . import model as M
from .config import FinetuneSettings, ModelConfig
from .rng import Rng, RngLanes, stream_seed

# TRADES / MART reference code start: x + 0.001 * randn, not projected.
NORMAL_START_STD = 0.001


# ---------------------------------------------------------------- losses (finetune/losses.ts)
def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example -sum_k t_k log softmax(z)_k, [N]."""
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1)


def smooth_targets(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    return targets if smoothing == 0 else targets * (1 - smoothing) + smoothing / targets.shape[1]


def kl_from_logits(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(q)) per example, [N]."""
    log_p = torch.log_softmax(p_logits, dim=1)
    return (torch.exp(log_p) * (log_p - torch.log_softmax(q_logits, dim=1))).sum(dim=1)


def trades_loss(clean: torch.Tensor, adv: torch.Tensor, targets: torch.Tensor, beta: float):
    natural = soft_cross_entropy(clean, targets).mean()
    robust = kl_from_logits(clean, adv).mean()
    return natural + beta * robust, natural, robust


def mart_loss(clean: torch.Tensor, adv: torch.Tensor, targets: torch.Tensor, hard: torch.Tensor, beta: float):
    """MART as its reference code (and losses.ts): boosted CE on adv + beta * KL weighted by 1 - p_y(clean)."""
    adv_probs = torch.softmax(adv, dim=1)
    masked = torch.where(hard > 0.5, torch.full_like(adv, float("-inf")), adv)
    wrong = torch.nn.functional.one_hot(masked.argmax(dim=1), adv.shape[1]).to(adv.dtype)
    margin = -torch.log(1.0001 - (adv_probs * wrong).sum(dim=1) + 1e-12)
    boosted = (soft_cross_entropy(adv, targets) + margin).mean()
    log_clean = torch.log_softmax(clean, dim=1)
    clean_probs = torch.exp(log_clean)
    kl = (clean_probs * (log_clean - torch.log(adv_probs + 1e-12))).sum(dim=1)
    true_probs = (clean_probs * hard).sum(dim=1)
    robust = (kl * (1.0000001 - true_probs)).mean()
    return boosted + beta * robust, boosted, robust


def merge_dbat_logits(logits: torch.Tensor, num_classes: int, merge: str) -> torch.Tensor:
    """outputs.ts mergeDbatLogits: class y scores merge(z_y, z_{y+C}), 'max' or 'logsumexp'."""
    if logits.shape[1] != 2 * num_classes:
        raise ValueError(f"DBAT logits have {logits.shape[1]} outputs, expected 2 x {num_classes}")
    real, dummy = logits[:, :num_classes], logits[:, num_classes:]
    top = torch.maximum(real, dummy)
    if merge == "max":
        return top
    return top + torch.log(torch.exp(real - top) + torch.exp(dummy - top))


def dbat_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """losses.ts dbatLoss: CE over the 2N rows [clean; adversarial] of 2C logits, clean rows' targets in
    the first C outputs, adversarial rows' in the dummy ones, then smoothing over all 2C."""
    zeros = torch.zeros_like(targets)
    both = torch.cat([torch.cat([targets, zeros], dim=1), torch.cat([zeros, targets], dim=1)], dim=0)
    return soft_cross_entropy(logits, smooth_targets(both, smoothing)).mean()


def correct_count(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == labels).sum().to(torch.float32)


# ---------------------------------------------------------------- the adversary (finetune/adversary.ts)
def project(x: torch.Tensor, v: torch.Tensor, eps: float, threat: str) -> torch.Tensor:
    """Onto {x' : ||x' - x|| <= eps, 0 <= x' <= 1} (attacks/geometry.ts ThreatBall)."""
    if threat == "linf":
        return torch.minimum(torch.maximum(v, torch.clamp_min(x - eps, 0.0)), torch.clamp_max(x + eps, 1.0))
    d = v - x
    norm = d.reshape(d.shape[0], -1).norm(dim=1).reshape(-1, 1, 1, 1)
    return torch.clamp(x + d / (norm + 1e-12) * torch.clamp_max(norm, eps), 0.0, 1.0)


def steepest_direction(g: torch.Tensor, threat: str) -> torch.Tensor:
    if threat == "linf":
        return torch.sign(g)
    return g / (g.reshape(g.shape[0], -1).norm(dim=1).reshape(-1, 1, 1, 1) + 1e-12)


def ascend(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    threat: str,
) -> torch.Tensor:
    """Projected steepest ascent of sum(objective(forward(x'))) from `start`; the last iterate."""
    current = start.detach()
    for _ in range(steps):
        current = current.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(forward(current)).sum(), [current])
        current = project(x, current.detach() + alpha * steepest_direction(grad, threat), eps, threat).detach()
    if steps == 0:
        current = project(x, current, eps, threat)
    return current


# ---------------------------------------------------------------- the step
@dataclass
class FinetuneStepResult:
    loss: torch.Tensor
    parts: Dict[str, torch.Tensor]
    clean_correct: torch.Tensor
    adv_correct: Optional[torch.Tensor]
    adversarial: Optional[torch.Tensor]
    grads: Dict[str, torch.Tensor] = field(default_factory=dict)


def parameter_grads(params: M.Params, loss: torch.Tensor, loss_scale: float = 1.0) -> Dict[str, torch.Tensor]:
    """Gradients of loss * loss_scale (fp16's loss scaling; the optimiser's scaled_step unscales them)."""
    names = list(params)
    scaled = loss * loss_scale if loss_scale != 1.0 else loss
    grads = torch.autograd.grad(scaled, [params[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, grads)}


def dbat_target_classes(run: FinetuneSettings, labels, ids, seed: int, epoch: int, num_classes: int, least_likely) -> List[int]:
    """step.ts dbatTargetClasses: the least likely output where it is neither y nor y + C, else a draw
    from the example's 'dbat-target' stream: a real class other than y early on, any of the 2C outputs
    but y and y + C later."""
    c = num_classes
    real_only = least_likely is None and epoch + 1 < run.dbat_real_target_epochs * run.epochs
    out: List[int] = []
    for i, (y, example) in enumerate(zip(labels, ids)):
        ll = None if least_likely is None else least_likely[i]
        if ll is not None and ll != y and ll != y + c:
            out.append(ll)
            continue
        stream = Rng(stream_seed(seed, int(example), "dbat-target", 0))
        if real_only:
            k = stream.int(c - 1)
            out.append(k + 1 if k >= y else k)
            continue
        k = stream.int(2 * c - 2)
        skipped = k + 1 if k >= y else k
        out.append(skipped + 1 if skipped >= y + c else skipped)
    return out


def finetune_step(
    params: M.Params,
    c: ModelConfig,
    run: FinetuneSettings,
    images: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor,
    start_noise: Optional[torch.Tensor],
    rng: Optional[Rng],
    seed: Optional[int] = None,
    ids: Optional[Sequence[int]] = None,
    epoch: int = 0,
    loss_scale: float = 1.0,
) -> FinetuneStepResult:
    """One step on NHWC images with probability-row targets [N, C] and hard labels [N].

    start_noise: the attack's random start as an offset from x (pgd-at / fast-at: uniform in the eps-box,
    projected here; trades / mart / dbat: 0.001 N(0, 1), added unprojected; apgd-at: none); rng: drop
    path's draws; seed, ids and epoch: DBAT's targeted attack (its per-example target streams);
    loss_scale: the parameter gradients are of loss * loss_scale (fp16). The attack's input gradients are
    not scaled: only their sign or direction is used."""
    eps = run.eps / 255.0
    alpha = run.attack_alpha / 255.0
    num_classes = targets.shape[1]
    frozen = {n: p.detach() for n, p in params.items()}

    def eval_logits(x: torch.Tensor) -> torch.Tensor:
        return M.classifier_forward(frozen, c, x)

    def train_logits(x: torch.Tensor) -> torch.Tensor:
        return M.classifier_forward(params, c, x, run.drop_path, rng)

    def scores(z: torch.Tensor) -> torch.Tensor:
        return merge_dbat_logits(z, num_classes, run.dbat_merge) if run.method == "dbat" else z

    smoothed = smooth_targets(targets, run.effective_label_smoothing)
    if run.method == "natural":
        z = train_logits(images)
        loss = soft_cross_entropy(z, smoothed).mean()
        return FinetuneStepResult(loss.detach(), {}, correct_count(z.detach(), labels), None, None, parameter_grads(params, loss, loss_scale))

    def ce_objective(z: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(z, targets)

    if run.method == "apgd-at":
        from .apgd_train import apgd_highest_loss  # apgd_train builds on this module's geometry

        x_adv = apgd_highest_loss(eval_logits, images, labels, eps, run.apgd_steps, run.apgd_rho, run.threat)
        return _adversarial_only(params, run, images, x_adv, smoothed, labels, eval_logits, train_logits, loss_scale)

    if start_noise is None:
        raise ValueError(f"method {run.method} needs the attack's random start")

    if run.method in ("pgd-at", "fast-at"):
        fast = run.method == "fast-at"
        step_alpha = run.fast_at_alpha_factor * eps if fast else alpha
        steps = 1 if fast else run.attack_steps
        uniform = fast or run.random_start
        start = project(images, images + start_noise, eps, run.threat) if uniform else images.clone()
        x_adv = ascend(eval_logits, images, ce_objective, start, eps, step_alpha, steps, run.threat)
        return _adversarial_only(params, run, images, x_adv, smoothed, labels, eval_logits, train_logits, loss_scale)

    start = images + start_noise
    if run.method == "trades":
        with torch.no_grad():
            clean_eval = eval_logits(images)
        x_adv = ascend(eval_logits, images, lambda z: kl_from_logits(clean_eval, z), start, eps, alpha, run.attack_steps, run.threat)
    elif run.method == "mart":
        x_adv = ascend(eval_logits, images, ce_objective, start, eps, alpha, run.attack_steps, run.threat)
    elif run.method == "dbat":
        if run.dbat_attack == "untargeted":
            x_adv = ascend(lambda x: scores(eval_logits(x)), images, ce_objective, start, eps, alpha, run.attack_steps, run.threat)
        else:
            if seed is None or ids is None:
                raise ValueError("DBAT's targeted attack needs the step's seed and the batch's dataset ids")
            least_likely = None
            if run.dbat_attack == "targeted-ll":
                with torch.no_grad():
                    least_likely = [int(v) for v in eval_logits(images).argmin(dim=1).tolist()]
            chosen = dbat_target_classes(run, [int(v) for v in labels.tolist()], ids, seed, epoch, num_classes, least_likely)
            toward = torch.nn.functional.one_hot(torch.tensor(chosen, device=images.device), 2 * num_classes).to(images.dtype)
            x_adv = ascend(eval_logits, images, lambda z: -soft_cross_entropy(z, toward), start, eps, alpha, run.attack_steps, run.threat)
    else:
        raise ValueError(f"method {run.method!r} has no single-model step (generalist: generalist.py)")

    n = images.shape[0]
    z = train_logits(torch.cat([images, x_adv], dim=0))
    clean, adv = z[:n], z[n:]
    hard = torch.nn.functional.one_hot(labels.long(), num_classes).to(z.dtype)
    parts: Dict[str, torch.Tensor] = {}
    if run.method == "trades":
        loss, natural, robust = trades_loss(clean, adv, smoothed, run.trades_beta)
        parts = {"natural_loss": natural.detach(), "robust_loss": robust.detach()}
    elif run.method == "mart":
        loss, boosted, robust = mart_loss(clean, adv, smoothed, hard, run.mart_beta)
        parts = {"boosted_ce": boosted.detach(), "robust_loss": robust.detach()}
    else:
        loss = dbat_loss(z, targets, run.effective_label_smoothing)
    return FinetuneStepResult(
        loss.detach(),
        parts,
        correct_count(scores(clean.detach()), labels),
        correct_count(scores(adv.detach()), labels),
        x_adv,
        parameter_grads(params, loss, loss_scale),
    )


def _adversarial_only(params, run, images, x_adv, smoothed, labels, eval_logits, train_logits, loss_scale: float) -> FinetuneStepResult:
    """pgd-at, fast-at, apgd-at: the training pass sees only adversarial images; clean accuracy costs one forward pass."""
    with torch.no_grad():
        clean_correct = correct_count(eval_logits(images), labels)
    z = train_logits(x_adv)
    loss = soft_cross_entropy(z, smoothed).mean()
    return FinetuneStepResult(loss.detach(), {}, clean_correct, correct_count(z.detach(), labels), x_adv, parameter_grads(params, loss, loss_scale))


def start_noise(run: FinetuneSettings, seed: int, ids, shape) -> Optional[torch.Tensor]:
    """The attack's random start as an offset from x, from each example's own stream (attacks/streams.ts,
    finetune/adversary.ts): uniform in the eps-box (l_inf) or a uniform direction with radius eps * U(0, 1)
    (l_2) for pgd-at / fast-at / generalist; 0.001 N(0, 1) for trades / mart / dbat; None for natural and
    apgd-at (it starts at x)."""
    if run.method in ("natural", "apgd-at"):
        return None
    return pgd_start(seed, ids, shape, run.threat, run.eps / 255.0, 0, normal=run.method in ("trades", "mart", "dbat"))


def pgd_start(seed: int, ids, shape, threat: str, eps: float, round_: int, normal: bool = False) -> torch.Tensor:
    """PGD's random start (attacks/start.ts pgdStart) from each example's stream for restart `round_`
    (attacks/streams.ts exampleStreams(seed, ids, 'pgd', round)); `normal`: 0.001 N(0, 1) instead."""
    lanes = RngLanes([stream_seed(seed, int(i), "pgd", round_) for i in ids])
    per_row = int(shape[1] * shape[2] * shape[3])

    def rows(draw) -> np.ndarray:  # [examples, per_row], each row one stream's draws in order, stored as float32
        return np.stack([draw() for _ in range(per_row)], axis=1).astype(np.float32)

    if normal:
        values = (rows(lanes.normal).astype(np.float64) * NORMAL_START_STD).astype(np.float32)
    elif threat == "linf":
        values = (rows(lambda: 2 * lanes.uniform() - 1).astype(np.float64) * eps).astype(np.float32)
    else:
        g = rows(lanes.normal).astype(np.float64)
        radii = (eps * lanes.uniform()).reshape(-1, 1)
        values = (g * (radii / (np.sqrt((g * g).sum(axis=1, keepdims=True)) + 1e-12))).astype(np.float32)
    return torch.from_numpy(values.reshape(tuple(shape)))
