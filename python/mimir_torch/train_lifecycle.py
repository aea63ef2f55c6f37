"""What pre-training and fine-tuning runs share (train/run-lifecycle.ts's twin): the opening (the checkpoint to
resume from, the failed event), restoring what a checkpoint holds, the data order and gradient averaging, the
`started` event, the checkpoint save on rank 0 with its event (the other ranks wait for it), and the `done` event."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, NoReturn, Optional, Tuple

import torch

from .checkpoint import Checkpoint, OptimizerState, find_latest, load_checkpoint, save_checkpoint
from .data.batches import BatchIterator
from .distributed import GlobalBatchSampler, GradientAverager, World
from .events import Emitter, StepEvents
from .optim import AdamW
from .precision import Precision
from .rng import Rng
from .runtime import CHECKPOINTS_DIR, RunFailed, describe_engine


@dataclass
class RunOpening:
    """A run's start: its checkpoints folder, `state` (step, last checkpoint) as the failed event reports it, `fail` (emits that event
    and raises RunFailed), and the newest checkpoint in the run's folder (resume_from, stored) when there is one."""

    checkpoints: str
    state: Dict[str, Any]
    fail: Callable[[str], NoReturn]
    resume_from: Optional[str]
    stored: Optional[Checkpoint]


RUN_NAMES = {"pretrain": "pre-training", "finetune": "fine-tuning"}


def open_run(out_dir: str, kind: str, resume: bool, has_job_config: bool, emitter: Emitter) -> RunOpening:
    """Finds the checkpoint to continue from; with --resume (or no job config) there must be one, and of
    this run's kind (a pre-training does not continue from a fine-tuning's checkpoint, nor the other way)."""
    checkpoints = os.path.join(out_dir, CHECKPOINTS_DIR)
    state: Dict[str, Any] = {"step": 0, "last": None}

    def fail(message: str) -> NoReturn:
        emitter.emit({"type": "failed", "message": message, "step": state["step"], "lastCheckpoint": state["last"]})
        raise RunFailed(message)

    resume_from = find_latest(checkpoints)
    if resume_from is None and (resume or not has_job_config):
        fail(f"Nothing to resume in {out_dir}: it holds no checkpoint ({checkpoints}).")
    stored = load_checkpoint(resume_from) if resume_from else None
    if stored and stored.manifest["kind"] != kind:  # not this run's to continue: no last checkpoint to offer
        fail(
            f"{resume_from} is a {RUN_NAMES.get(stored.manifest['kind'], stored.manifest['kind'])} checkpoint; "
            f"--resume continues a {RUN_NAMES[kind]} run: give a {RUN_NAMES[kind]} run's folder."
        )
    if stored:
        state["last"] = resume_from
    return RunOpening(checkpoints, state, fail, resume_from, stored)


def run_config(opening: RunOpening, job_config: Mapping[str, Any], epochs_override: Optional[int]) -> Dict[str, Any]:
    """The checkpoint's run config when resuming, else the job's; --epochs raises the total (never below what is done)."""
    stored = opening.stored
    config = dict(stored.manifest["runConfig"]) if stored else dict(job_config)
    if epochs_override is not None:
        if stored and epochs_override < int(stored.manifest["epoch"]):
            opening.fail(f"--epochs {epochs_override} is below the {stored.manifest['epoch']} epochs the checkpoint has already done.")
        config["epochs"] = epochs_override
    return config


def restore_weights(stored: Checkpoint, params: Mapping[str, torch.Tensor], optimizer: Optional[AdamW], device: torch.device) -> None:
    """The checkpoint's parameters into `params` (in place), and its optimiser state where both have one."""
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(stored.params[k].reshape(p.shape).to(device))
    if stored.optimizer and optimizer:
        o = stored.optimizer
        optimizer.import_state(o.step, o.param_steps, {k: t.to(device) for k, t in o.m.items()}, {k: t.to(device) for k, t in o.v.items()})


def restore_position(stored: Checkpoint, rng: Rng, state: Dict[str, Any]) -> Tuple[Any, int]:
    """The run's Rng and step as the checkpoint left them; returns the data iterator's state and the epoch."""
    rng.restore(stored.manifest["rng"]["state"])
    state["step"] = int(stored.manifest["step"])
    return stored.manifest["rng"]["dataIterator"], int(stored.manifest["epoch"])


def run_batches(dataset: Any, batch_size: int, seed: int, augmentation: Any, iterator_state: Any, params: Mapping[str, torch.Tensor], world: World, fail: Callable[[str], NoReturn]) -> Tuple[BatchIterator, GlobalBatchSampler, GradientAverager]:
    """A run's data order (the tfjs engine's batch iterator), this rank's rows of each batch, the gradient averaging."""
    iterator = BatchIterator(dataset, batch_size, (seed ^ 0x9E3779B9) & 0xFFFFFFFF, augmentation, iterator_state)
    try:
        sampler = GlobalBatchSampler(len(dataset), batch_size, world)
    except ValueError as error:
        fail(str(error))
    return iterator, sampler, GradientAverager(params, world)


def emit_started(emitter: Emitter, run_kind: str, out_dir: str, opening: RunOpening, epoch: int, steps_per_epoch: int, total_steps: int, device: torch.device, precision: Precision, world: World) -> None:
    emitter.emit(
        {
            "type": "started",
            "runKind": run_kind,
            "backend": "torch",
            "engine": describe_engine(device, precision, world),
            "outDir": out_dir,
            "step": opening.state["step"],
            "epoch": epoch,
            "totalSteps": total_steps,
            "stepsPerEpoch": steps_per_epoch,
            "resumedFrom": opening.resume_from,
        }
    )


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
