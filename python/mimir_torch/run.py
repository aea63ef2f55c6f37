"""The PyTorch engine's run entry point:

  python3 -m mimir_torch.run --config job.json --out DIR [--device auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]

job.json: {"kind": "pretrain", "config": the PretrainConfig the Node side validated and filled (model
resolved to a ModelConfig object, the built-in dataset's size given)}. Starts the run in DIR, or
continues it from DIR/checkpoints' newest checkpoint (the stored config wins, as in the tfjs engine).
Prints run events (src/shared/run-events.ts) as JSON lines, rank 0 only. SIGTERM / SIGINT stop the run
at the next step boundary (the last checkpoint is kept). Exit status: 0 done, 1 failed (a `failed`
event says why), 2 bad invocation, 130 cancelled.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch

from . import model as M
from .checkpoint import OptimizerState, find_latest, load_checkpoint, save_checkpoint
from .config import ConfigError, ModelConfig, PretrainSettings
from .data.batches import BatchIterator
from .data.cifar10 import Cifar10Dataset
from .data.procedural import BuiltinDataset
from .distributed import World, average_gradients, average_scalars, any_rank, close_world, init_world
from .events import Emitter, StepEvents, non_finite_stop
from .masking import rng_masking
from .optim import AdamW, learning_rate_at, scaled_learning_rate
from .pretrain_step import pretrain_step
from .previews import write_preview_snapshot
from .rng import Rng
from .safetensors_io import write_safetensors

CHECKPOINTS_DIR = "checkpoints"
PREVIEWS_DIR = "previews"
CONFIG_FILE = "config.json"
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class RunFailed(Exception):
    pass


class Cancelled(Exception):
    pass


def open_dataset(source: Mapping[str, Any]):
    kind = source.get("kind")
    if kind == "builtin":
        if source.get("size") is None:
            raise ConfigError("dataset.size is missing: the Node side resolves the built-in set's size before starting the PyTorch engine")
        return BuiltinDataset(source["split"], int(source["size"]), int(source["seed"]), int(source["classes"]), int(source["imageSize"]))
    if kind == "cifar10":
        root = source.get("root") or os.path.join(os.environ.get("MIMIR_DATA", os.path.expanduser("~/.mimir/datasets")), "cifar10")
        return Cifar10Dataset(root, source["split"])
    raise ConfigError(f"dataset kind {kind!r} is not available on the PyTorch engine yet (builtin, cifar10): use --engine tfjs")


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: this torch sees no CUDA device (torch.cuda.is_available() is False)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def pick_precision(choice: str, device: torch.device) -> Optional[torch.dtype]:
    """None for fp32. On CUDA, auto is bf16 where supported, else fp16 (with a GradScaler's job done by
    fp32 master weights here: autocast only wraps the forward passes). On the CPU, always fp32."""
    if device.type != "cuda" or choice == "fp32":
        return None
    if choice == "bf16" or (choice == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def die_with_parent() -> None:
    """When the process that launched the ranks dies (even by SIGKILL), the ranks die too (Linux:
    PR_SET_PDEATHSIG), so a killed `mimir pretrain` leaves no orphan training on; a resume then
    continues from the last checkpoint."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(EXIT_CANCELLED)


GRAD_DUMP_ENV = "MIMIR_TORCH_DUMP_GRADS"


class Stop:
    """SIGTERM / SIGINT set a flag that the loop reads at step boundaries."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def describe_engine(device: torch.device, precision: Optional[torch.dtype], world: World) -> Dict[str, Any]:
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if device.type == "cuda" else ["cpu"]
    return {
        "name": "torch",
        "version": torch.__version__,
        "device": device.type,
        "devices": devices,
        "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[precision],
        "worldSize": world.size,
    }


def run_pretraining(job_config: Mapping[str, Any], epochs_override: Optional[int], out_dir: str, device: torch.device, precision: Optional[torch.dtype], world: World, emitter: Emitter, stop: Stop) -> Dict[str, Any]:
    checkpoints = os.path.join(out_dir, CHECKPOINTS_DIR)
    state: Dict[str, Any] = {"step": 0, "last": None}

    def fail(message: str) -> None:
        emitter.emit({"type": "failed", "message": message, "step": state["step"], "lastCheckpoint": state["last"]})
        raise RunFailed(message)

    resume_from = find_latest(checkpoints)
    stored = load_checkpoint(resume_from) if resume_from else None
    if stored:
        state["last"] = resume_from
    config = dict(stored.manifest["runConfig"]) if stored else dict(job_config)
    if epochs_override is not None:
        if stored and epochs_override < int(stored.manifest["epoch"]):
            fail(f"--epochs {epochs_override} is below the {stored.manifest['epoch']} epochs the checkpoint has already done.")
        config["epochs"] = epochs_override
    try:
        run = PretrainSettings.parse(config, "config")
        if not isinstance(config.get("model"), Mapping):
            raise ConfigError("config.model must be a resolved model config (the Node side resolves presets)")
        model_config = ModelConfig.parse(config["model"], "config.model")
        dataset = open_dataset(config["dataset"])
    except (ConfigError, FileNotFoundError, ValueError) as error:
        fail(str(error))
        raise  # unreachable: fail raises
    if dataset.image_size != model_config.image_size:
        fail(f"The model expects {model_config.image_size} px images but the dataset has {dataset.image_size} px ones; set model.imageSize or the dataset's imageSize.")
    seed = int(config["seed"])
    batch_size = int(config["batchSize"])
    epochs = int(config["epochs"])
    optim_cfg = config["optimizer"]
    rows = world.rows(batch_size)
    if world.rank == 0:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
            f.write(json.dumps(config, indent=2) + "\n")

    rng = Rng(seed)
    params = M.init_params_rng(M.mae_param_specs(model_config), rng.fork())
    M.check_params(params, M.mae_param_specs(model_config))
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    optimizer = AdamW(params, betas=(optim_cfg["beta1"], optim_cfg["beta2"]), weight_decay=optim_cfg["weightDecay"], max_grad_norm=optim_cfg["clipGrad"])
    iterator_state = None
    epoch = 0
    if stored:
        M.check_params(stored.params, M.mae_param_specs(model_config))
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(stored.params[k].reshape(p.shape).to(device))
        if stored.optimizer:
            o = stored.optimizer
            optimizer.import_state(o.step, o.param_steps, {k: t.to(device) for k, t in o.m.items()}, {k: t.to(device) for k, t in o.v.items()})
        rng.restore(stored.manifest["rng"]["state"])
        iterator_state = stored.manifest["rng"]["dataIterator"]
        epoch = int(stored.manifest["epoch"])
        state["step"] = int(stored.manifest["step"])

    iterator = BatchIterator(dataset, batch_size, (seed ^ 0x9E3779B9) & 0xFFFFFFFF, config["augmentation"], iterator_state)
    steps_per_epoch = iterator.batches_per_epoch
    total_steps = steps_per_epoch * epochs
    peak_lr = scaled_learning_rate(optim_cfg["baseLr"], batch_size)
    preview_count = min(int(config["previewCount"]), len(dataset))
    preview_batch = torch.from_numpy(dataset.batch(list(range(preview_count)))[0]).to(device)
    emitter.emit(
        {
            "type": "started",
            "runKind": "pretrain",
            "backend": "torch",
            "engine": describe_engine(device, precision, world),
            "outDir": out_dir,
            "step": state["step"],
            "epoch": epoch,
            "totalSteps": total_steps,
            "stepsPerEpoch": steps_per_epoch,
            "resumedFrom": resume_from,
        }
    )
    emitter.log(
        "info",
        f"{run.mode} pre-training on the PyTorch engine ({device.type}, {world.size} process{'es' if world.size > 1 else ''}): "
        f"model {model_config.width}x{model_config.depth}, {steps_per_epoch} steps per epoch of {batch_size} images"
        + (f", {batch_size // world.size} per process; MI on each process's local batch" if world.distributed else "")
        + ".",
    )
    events = StepEvents(emitter, batch_size, epochs, steps_per_epoch, int(config["logEvery"]))
    started = time.perf_counter()
    summary: Dict[str, float] = {}
    last_lr = 0.0

    def preview() -> None:
        if world.rank != 0:
            return
        step = state["step"]
        directory = os.path.join(out_dir, PREVIEWS_DIR, f"step-{step:07d}")
        snapshot = write_preview_snapshot(params, model_config, run, seed, preview_batch, directory)
        emitter.emit({"type": "preview", "step": step, "epoch": epoch, "imageSize": model_config.image_size, **snapshot})

    def draw_mask():
        order = "shuffled" if run.mi.token_order == "shuffled" else "spatial"
        return rng_masking(rng, batch_size, model_config.num_patches, run.mask_ratio, order)

    def local(mask):
        return type(mask)(mask.visible_ids[rows].to(device), mask.masked_ids[rows].to(device))

    if state["step"] == 0:
        preview()
    while epoch < epochs:
        sums = {"loss": 0.0, "recon": 0.0, "mi": 0.0, "count": 0}
        for b in range(steps_per_epoch):
            if any_rank(stop.requested, world, device):
                raise Cancelled()
            step_start = time.perf_counter()
            images_np, _, _ = iterator.next()
            images = torch.from_numpy(images_np[rows]).to(device)
            lr = learning_rate_at(peak_lr, optim_cfg["minLr"], optim_cfg["warmupEpochs"], epochs, epoch + b / steps_per_epoch)
            mask = draw_mask()
            start = None
            if run.mode != "mae":
                generator = torch.Generator().manual_seed(rng.seed())
                eps = run.attack.eps / 255
                shape = (batch_size, mask.num_visible, model_config.patch_dim) if run.attack.perturb == "visible" else (batch_size,) + tuple(images_np.shape[1:])
                start = ((torch.rand(shape, generator=generator) * 2 - 1) * eps)[rows].to(device)
            with torch.autocast(device.type, dtype=precision, enabled=precision is not None):
                result = pretrain_step(params, model_config, run, images, local(mask), start, lambda: local(draw_mask()))
            grads = average_gradients({k: g.float() for k, g in result.grads.items()}, world)
            if os.environ.get(GRAD_DUMP_ENV):
                # Test hook (the DDP gradient-equivalence test): the first step's averaged gradients, then stop.
                if world.rank == 0:
                    write_safetensors(os.environ[GRAD_DUMP_ENV], {k: g.detach().cpu() for k, g in grads.items()})
                raise Cancelled()
            norm = optimizer.step(grads, lr)
            state["step"] += 1
            last_lr = lr
            values = average_scalars(
                {"loss": result.loss.item(), "recon_loss": result.recon.item(), "mi": result.mi.item(), "attack_loss": result.attack_loss.item()},
                world,
                device,
            )
            message = non_finite_stop(values, state["step"], epoch, state["last"])
            if message:
                fail(message)
            sums["loss"] += values["loss"]
            sums["recon"] += values["recon_loss"]
            sums["mi"] += values["mi"]
            sums["count"] += 1
            events.after(state["step"], epoch, b, time.perf_counter() - step_start, values, lr, {"grad_norm": norm} if norm is not None else {})
            if int(config["previewEvery"]) > 0 and state["step"] % int(config["previewEvery"]) == 0:
                preview()
        epoch += 1
        summary = {"loss": sums["loss"] / sums["count"], "recon_loss": sums["recon"] / sums["count"], "mi": sums["mi"] / sums["count"]}
        emitter.emit({"type": "metrics", "step": state["step"], "epoch": epoch, "values": {"epoch_" + k: v for k, v in summary.items()}})
        if int(config["previewEvery"]) == 0:
            preview()
        if epoch % int(config["checkpointEvery"]) == 0 or epoch == epochs:
            if world.rank == 0:
                step_count, param_steps, m, v = optimizer.export_state()
                saved = save_checkpoint(
                    checkpoints,
                    kind="pretrain",
                    epoch=epoch,
                    step=state["step"],
                    run_config=config,
                    model_config=config["model"],
                    params=params,
                    optimizer=OptimizerState(step_count, param_steps, m, v, last_lr, [optim_cfg["beta1"], optim_cfg["beta2"]], optimizer.eps, optim_cfg["weightDecay"], optim_cfg["clipGrad"]),
                    rng_state=list(rng.state()),
                    data_iterator=iterator.state(),
                    metrics=summary,
                    backend=f"torch-{device.type}",
                    keep_last=int(config["keepCheckpoints"]),
                )
                state["last"] = saved
                emitter.emit({"type": "checkpoint", "step": state["step"], "epoch": epoch, "path": saved})
            if world.distributed:
                torch.distributed.barrier()
    done = {
        "type": "done",
        "step": state["step"],
        "epoch": epoch,
        "checkpoint": state["last"] or "",
        "seconds": time.perf_counter() - started,
        "summary": {**summary, "images_per_s": events.images_per_second},
    }
    emitter.emit(done)
    return done


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m mimir_torch.run", description="Run a MIMIR training job on the PyTorch engine.")
    parser.add_argument("--config", required=True, help="job JSON written by the workbench: {kind, config}")
    parser.add_argument("--out", required=True, help="the run's folder (resumes from its checkpoints)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's default)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        job = json.load(f)
    die_with_parent()
    stop = Stop()
    device = pick_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    world = init_world(device)
    emitter = Emitter(world.rank)
    try:
        kind = job.get("kind")
        if kind != "pretrain":
            emitter.emit({"type": "failed", "message": f"job kind {kind!r} is not available on the PyTorch engine yet (pretrain): use --engine tfjs", "step": None, "lastCheckpoint": None})
            return EXIT_FAILED
        run_pretraining(job["config"], job.get("epochsOverride"), os.path.abspath(args.out), device, pick_precision(args.precision, device), world, emitter, stop)
        return EXIT_DONE
    except RunFailed:
        return EXIT_FAILED
    except Cancelled:
        emitter.log("warn", "Cancelled at a step boundary; the last checkpoint is kept.")
        return EXIT_CANCELLED
    except Exception as error:  # anything unexpected: a failed event with the reason, then the traceback on stderr
        emitter.emit({"type": "failed", "message": f"The PyTorch engine stopped: {type(error).__name__}: {error}", "step": None, "lastCheckpoint": find_latest(os.path.join(args.out, CHECKPOINTS_DIR))})
        raise
    finally:
        close_world(world)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
