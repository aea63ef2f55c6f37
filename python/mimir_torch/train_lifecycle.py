"""What pre-training and fine-tuning runs share at the end of an epoch and of the run (train/run-lifecycle.ts's
twin): the checkpoint save on rank 0 with its event (the other ranks wait for it), and the `done` event."""
from __future__ import annotations

import time
from typing import Any, Dict, Mapping

import torch

from .checkpoint import OptimizerState, save_checkpoint
from .distributed import World
from .events import Emitter, StepEvents
from .optim import AdamW


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
    optimizer: AdamW,
    optim_cfg: Mapping[str, Any],
    lr: float,
    rng_state: Any,
    data_iterator: Any,
    metrics: Mapping[str, float],
    device: torch.device,
    keep_last: int,
) -> None:
    """Rank 0 saves (state["last"] becomes the checkpoint) and emits its event; every rank then meets at a barrier."""
    if world.rank == 0:
        step_count, param_steps, m, v = optimizer.export_state()
        saved = save_checkpoint(
            directory,
            kind=kind,
            epoch=epoch,
            step=state["step"],
            run_config=run_config,
            model_config=model_config,
            params=params,
            optimizer=OptimizerState(
                step_count, param_steps, m, v, lr, [optim_cfg["beta1"], optim_cfg["beta2"]], optimizer.eps,
                optim_cfg["weightDecay"], optim_cfg["clipGrad"],
            ),
            rng_state=list(rng_state),
            data_iterator=data_iterator,
            metrics=metrics,
            backend=f"torch-{device.type}",
            keep_last=keep_last,
        )
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
