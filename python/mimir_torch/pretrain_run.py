"""The pre-training loop of the PyTorch engine, as src/engine/pretrain/trainer.ts: data, MIMIR steps,
AdamW with warm-up + cosine per iteration, metrics, previews, checkpoints, resume."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Mapping, Optional

import torch

from . import model as M
from .config import ConfigError, ModelConfig, PretrainSettings, need_map
from .distributed import World, any_rank, average_scalars
from .events import Emitter, StepEvents, non_finite_stop
from .masking import rng_masking
from .precision import Precision, overflow_message
from .system_metrics import system_metrics
from .optim import AdamW, learning_rate_at, scaled_learning_rate
from .pretrain_step import pretrain_step
from .previews import write_hier_preview_snapshot, write_preview_snapshot
from .rng import Rng
from .data.subset import dataset_fraction
from .runtime import GRAD_DUMP_ENV, PREVIEWS_DIR, Cancelled, Stop, open_dataset
from .safetensors_io import write_safetensors
from .train_lifecycle import emit_started, finish, open_run, restore_position, restore_weights, run_batches, run_config, save_epoch_checkpoint

CONFIG_FILE = "config.json"


def run_pretraining(job_config: Optional[Mapping[str, Any]], resume: bool, epochs_override: Optional[int], out_dir: str, device: torch.device, precision: Precision, world: World, emitter: Emitter, stop: Stop) -> Dict[str, Any]:
    opening = open_run(out_dir, "pretrain", resume, job_config is not None, emitter)
    checkpoints, state, fail, resume_from, stored = opening.checkpoints, opening.state, opening.fail, opening.resume_from, opening.stored
    config = run_config(opening, job_config or {}, epochs_override)
    try:
        run = PretrainSettings.parse(config, "config")
        if not isinstance(config.get("model"), Mapping):
            raise ConfigError("config.model must be a resolved model config (the Node side resolves presets)")
        model_config = ModelConfig.parse(config["model"], "config.model")
        dataset = dataset_fraction(open_dataset(config["dataset"]), need_map(config, "trainFraction", "config"))
    except (ConfigError, FileNotFoundError, ValueError) as error:
        fail(str(error))
        raise  # unreachable: fail raises
    if dataset.image_size != model_config.image_size:
        fail(f"The model expects {model_config.image_size} px images but the dataset has {dataset.image_size} px ones; set model.imageSize or the dataset's imageSize.")
    seed = int(config["seed"])
    batch_size = int(config["batchSize"])
    epochs = int(config["epochs"])
    optim_cfg = config["optimizer"]
    if world.rank == 0:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
            f.write(json.dumps(config, indent=2) + "\n")

    rng = Rng(seed)
    # An encoder with its own masked autoencoder (ConvNeXt: SparK, Swin: GreenMIM) supplies pretrainer();
    # its parameters are its module's (initialised as timm's), the ViT's are drawn from the workbench Rng.
    make_pretrainer = getattr(M.encoder_for(model_config), "pretrainer", None)
    init_rng = rng.fork()  # one fork for the initial weights either way: later draws (masks, attack starts) line up
    try:
        hier = make_pretrainer(model_config, device, init_rng.seed()) if make_pretrainer else None
    except (ConfigError, ValueError) as error:
        fail(str(error))
        raise
    specs = hier.specs() if hier else M.mae_param_specs(model_config)
    if hier:
        params = hier.params
    else:
        params = M.adjust_init(model_config, M.init_params_rng(specs, init_rng))
        M.check_params(params, specs)
        params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    # MAE's pre-training optimiser decays the cls and mask tokens (as the tfjs engine's createPretrainOptimizer).
    optimizer = AdamW(
        params,
        betas=(optim_cfg["beta1"], optim_cfg["beta2"]),
        weight_decay=optim_cfg["weightDecay"],
        max_grad_norm=optim_cfg["clipGrad"],
        no_decay_names=(),
    )
    iterator_state = None
    epoch = 0
    if stored:
        M.check_params(stored.params, specs)
        restore_weights(stored, params, optimizer, device)
        iterator_state, epoch = restore_position(stored, rng, state)

    iterator, sampler, average = run_batches(dataset, batch_size, seed, config["augmentation"], iterator_state, params, world, fail)
    rows = sampler.rows
    steps_per_epoch = iterator.batches_per_epoch
    total_steps = steps_per_epoch * epochs
    peak_lr = scaled_learning_rate(optim_cfg["baseLr"], batch_size)
    preview_count = min(int(config["previewCount"]), len(dataset))
    preview_batch = torch.from_numpy(dataset.batch(list(range(preview_count)))[0]).to(device)
    emit_started(emitter, "pretrain", out_dir, opening, epoch, steps_per_epoch, total_steps, device, precision, world)
    emitter.log(
        "info",
        f"{run.mode} pre-training on the PyTorch engine ({device.type}, {world.size} process{'es' if world.size > 1 else ''}): "
        f"model {model_config.width}x{model_config.depth}, {steps_per_epoch} steps per epoch of {batch_size} images"
        + (f", {sampler.per_rank} per process; gradients averaged by {average.description}; MI on each process's local batch" if world.distributed else "")
        + ".",
    )
    events = StepEvents(emitter, batch_size, epochs, steps_per_epoch, int(config["logEvery"]), system_metrics(device, world.rank, lambda m: emitter.log("warn", m)))
    started = time.perf_counter()
    summary: Dict[str, float] = {}
    last_lr = 0.0

    def preview() -> None:
        if world.rank != 0:
            return
        step = state["step"]
        directory = os.path.join(out_dir, PREVIEWS_DIR, f"step-{step:07d}")
        if hier:
            snapshot = write_hier_preview_snapshot(hier, run, seed, preview_batch, directory)
        else:
            snapshot = write_preview_snapshot(params, model_config, run, seed, preview_batch, directory)
        emitter.emit({"type": "preview", "step": step, "epoch": epoch, "imageSize": model_config.image_size, **snapshot})

    def draw_mask():
        if hier:
            return hier.draw_mask(rng, batch_size, run.mask_ratio)
        order = "shuffled" if run.mi.token_order == "shuffled" else "spatial"
        return rng_masking(rng, batch_size, model_config.num_patches, run.mask_ratio, order)

    def local(mask):
        if hier:
            return mask[rows].to(device)
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
                # the encoder's input patches: the visible ones, or all of them for a ConvStem (M.mae_input)
                if hier:  # image-shaped; the step keeps it on visible cells for perturb 'visible'
                    shape = (batch_size,) + tuple(images_np.shape[1:])
                else:
                    inputs = M.mae_input(model_config, torch.zeros((1,) + tuple(images_np.shape[1:])), mask.visible_ids[:1].cpu()).shape[1]
                    shape = (batch_size, inputs, model_config.patch_dim) if run.attack.perturb == "visible" else (batch_size,) + tuple(images_np.shape[1:])
                start = ((torch.rand(shape, generator=generator) * 2 - 1) * eps)[rows].to(device)
            with torch.autocast(device.type, dtype=precision.autocast_dtype, enabled=precision.autocast_dtype is not None):
                if hier:
                    result = hier.step(run, images, local(mask), start, lambda: local(draw_mask()), precision.loss_scale())
                else:
                    result = pretrain_step(params, model_config, run, images, local(mask), start, lambda: local(draw_mask()), precision.loss_scale())
            grads = average({k: g.float() for k, g in result.grads.items()})
            if os.environ.get(GRAD_DUMP_ENV):
                # Test hook (the DDP gradient-equivalence test): the first step's averaged gradients, then stop.
                if world.rank == 0:
                    write_safetensors(os.environ[GRAD_DUMP_ENV], {k: g.detach().cpu() for k, g in grads.items()}, {"averagedBy": average.description})
                raise Cancelled()
            norm, skipped = optimizer.scaled_step(grads, lr, precision.scaler)
            state["step"] += 1
            if skipped:
                emitter.log("warn", overflow_message(state["step"], precision, "this"))
                norm = None  # the norm of overflowed gradients is not a measurement
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
            save_epoch_checkpoint(
                emitter,
                world,
                state,
                checkpoints,
                kind="pretrain",
                epoch=epoch,
                run_config=config,
                model_config=config["model"],
                params=params,
                optimizer=optimizer,
                lr=last_lr,
                rng_state=rng.state(),
                data_iterator=iterator.state(),
                metrics=summary,
                device=device,
                keep_last=int(config["keepCheckpoints"]),
            )
    return finish(emitter, state, epoch, started, summary, events)
