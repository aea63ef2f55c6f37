"""What pre-training and fine-tuning runs share at the end of an epoch and of the run (train/run-lifecycle.ts's
twin): the checkpoint save on rank 0 with its event (the other ranks wait for it), and the `done` event."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

import torch

from .checkpoint import OptimizerState, save_checkpoint
from .distributed import World
from .events import Emitter, StepEvents
from .optim import AdamW


def optimizer_state(optimizer: AdamW, lr: float) -> OptimizerState:
    """What a checkpoint stores of an AdamW: its moments and steps, and the settings it ran with."""
    step_count, param_steps, m, v = optimizer.export_state()
    return OptimizerState(
        step_count, param_steps, m, v, lr, list(optimizer.betas), optimizer.eps, optimizer.weight_decay, optimizer.max_grad_norm,
    )


@dataclass(frozen=True)
class Companion:
    """A second checkpoint kept beside each main one under the same name (Generalist's learners and their
    optimiser). It is saved first, so a crash between the two saves leaves the previous pair intact; then
    `prune` gets the main checkpoint's name to remove companions whose main checkpoint is gone."""

    directory: str
    params: Mapping[str, torch.Tensor]
    optimizer: AdamW
    prune: Callable[[str], None]


def save_epoch_checkpoint(
    emitter: Emitter,
    world: World,
    state: Dict[str, Any],
    directory: str,
    *,
    kind: str,
    epoch: int,
    run_config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    params: Mapping[str, torch.Tensor],
    optimizer: Optional[AdamW],
    lr: float,
    rng_state: Any,
    data_iterator: Any,
    metrics: Mapping[str, float],
    device: torch.device,
    keep_last: int,
    companion: Optional[Companion] = None,
) -> None:
    """Rank 0 saves (state["last"] becomes the checkpoint) and emits its event; every rank then meets at a barrier."""
    if world.rank == 0:
        common: Dict[str, Any] = dict(
            kind=kind,
            epoch=epoch,
            step=state["step"],
            run_config=run_config,
            model_config=model_config,
            rng_state=list(rng_state),
            data_iterator=data_iterator,
            metrics=metrics,
            backend=f"torch-{device.type}",
        )
        if companion is not None:
            save_checkpoint(companion.directory, params=companion.params, optimizer=optimizer_state(companion.optimizer, lr), **common)
        saved = save_checkpoint(
            directory,
            params=params,
            optimizer=optimizer_state(optimizer, lr) if optimizer is not None else None,
            keep_last=keep_last,
            **common,
        )
        if companion is not None:
            companion.prune(os.path.basename(saved))
        state["last"] = saved
        emitter.emit({"type": "checkpoint", "step": state["step"], "epoch": epoch, "path": saved})
    if world.distributed:
        torch.distributed.barrier()


def finish(emitter: Emitter, state: Dict[str, Any], epoch: int, started: float, summary: Mapping[str, float], events: StepEvents) -> Dict[str, Any]:
    """The `done` event (emitted and returned): its output is the final checkpoint, or null when none was written."""
    done = {
        "type": "done",
        "step": state["step"],
        "epoch": epoch,
        "output": {"kind": "checkpoint", "path": state["last"]} if state["last"] else None,
        "seconds": time.perf_counter() - started,
        "summary": {**summary, "images_per_s": events.images_per_second},
    }
    emitter.emit(done)
    return done
