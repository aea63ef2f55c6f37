"""The fine-tuning loop of the PyTorch engine, as src/engine/finetune/trainer.ts: the classifier from a
pre-training checkpoint of either engine (or from scratch), batches with pad-crop + flip, the
method's step (Generalist: its learners, whose state is checkpointed beside the run's in
generalist-state/), AdamW with layer-wise lr decay and warm-up + cosine, held-out natural and PGD
accuracy after each epoch (DBAT: on its merged scores), checkpoints (kind finetune, runConfig = the
run's record) and resume. RandAugment and MixUp/CutMix as the tfjs engine (data/augment.py)."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Dict, Mapping, Optional

import torch

from . import model as M
from .checkpoint import LATEST, MANIFEST, find_latest, load_checkpoint
from .config import ConfigError, FinetuneSettings, ModelConfig, need_map
from .data.augment import mix_batch, rand_augment_batch
from .distributed import World, any_rank, average_scalars
from .events import Emitter, StepEvents, non_finite_stop
from .finetune_step import finetune_step, merge_dbat_logits, project, start_noise, steepest_direction
from .generalist import GeneralistTrainer
from .precision import Precision, overflow_message
from .system_metrics import system_metrics
from .optim import AdamW, layerwise_lr_scale, learning_rate_at, scaled_learning_rate
from .rng import Rng
from .data.subset import dataset_fraction
from .runtime import CHECKPOINTS_DIR, Cancelled, Stop, open_dataset
from .train_lifecycle import Companion, emit_started, finish, open_run, restore_position, restore_weights, run_batches, run_config, save_epoch_checkpoint

CONFIG_FILE = "finetune-config.json"
# Beside checkpoints/: Generalist's learners and their optimiser, one checkpoint per main one, same name (trainer.ts).
GENERALIST_STATE_DIR = "generalist-state"


def resolve_checkpoint(path: str) -> str:
    """A checkpoint itself, a folder of checkpoints, or a run folder: its newest checkpoint (checkpoint-path.ts)."""
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return path
    folder = path if os.path.isfile(os.path.join(path, LATEST)) else os.path.join(path, CHECKPOINTS_DIR)
    found = find_latest(folder)
    if found is None:
        raise ConfigError(f"{path} is neither a checkpoint (no {MANIFEST}) nor a run folder with checkpoints")
    return found


def held_out_accuracy(params: M.Params, c: ModelConfig, run: FinetuneSettings, dataset, size: int, steps: int, alpha: float, seed: int, device: torch.device) -> Dict[str, float]:
    """Natural and PGD-`steps` accuracy on the first `size` test images (fixed images and attack seed): an
    example counts as robust when no PGD iterate, the random start included, is misclassified. DBAT's
    classifier is measured (and attacked) on its merged class scores."""
    frozen = {k: v.detach() for k, v in params.items()}

    def scores(x: torch.Tensor) -> torch.Tensor:
        z = M.classifier_forward(frozen, c, x)
        return merge_dbat_logits(z, dataset.num_classes, run.dbat_merge) if run.method == "dbat" else z

    eps = run.eps / 255.0
    count, natural, robust = 0, 0, 0
    for start in range(0, min(size, len(dataset)), 128):
        ids = list(range(start, min(start + 128, size, len(dataset))))
        x_np, y_np = dataset.batch(ids)
        x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        with torch.no_grad():
            clean_ok = scores(x).argmax(dim=1) == y
        noise = start_noise(FinetuneSettings(**{**run.__dict__, "method": "pgd-at"}), seed, ids, tuple(x.shape))
        current = project(x, x + noise.to(device), eps, run.threat)
        still = clean_ok.clone()
        for _ in range(steps):
            current = current.detach().requires_grad_(True)
            logits = scores(current)
            still &= logits.argmax(dim=1) == y
            (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y, reduction="sum"), [current])
            current = project(x, current.detach() + alpha * steepest_direction(grad, run.threat), eps, run.threat)
        with torch.no_grad():
            still &= scores(current).argmax(dim=1) == y
        count += len(ids)
        natural += int(clean_ok.sum())
        robust += int(still.sum())
    return {"natural": natural / count if count else 0.0, "pgd": robust / count if count else 0.0}


def run_finetuning(job_config: Optional[Mapping[str, Any]], resume: bool, epochs_override: Optional[int], out_dir: str, device: torch.device, precision: Precision, world: World, emitter: Emitter, stop: Stop) -> Dict[str, Any]:
    opening = open_run(out_dir, "finetune", resume, job_config is not None, emitter)
    checkpoints, state, fail, resume_from, stored = opening.checkpoints, opening.state, opening.fail, opening.resume_from, opening.stored
    record = run_config(opening, {} if stored else job_config["record"], epochs_override)  # type: ignore[index]
    try:
        run = FinetuneSettings.parse(record, "config")
        dataset = dataset_fraction(open_dataset(record["dataset"]), need_map(record, "trainFraction", "config"))
        held_out = open_dataset({**record["dataset"], "split": "test"}) if int(record["heldOut"]["size"]) > 0 else None
    except (ConfigError, FileNotFoundError, ValueError) as error:
        fail(str(error))
        raise
    num_classes = int(record["numClasses"])
    outputs = 2 * num_classes if run.method == "dbat" else num_classes  # finetune-config.ts headOutputs
    if dataset.num_classes != num_classes:
        fail(f"The classifier has {num_classes} classes but the dataset has {dataset.num_classes}.")
    seed = int(record["seed"])
    rng = Rng(seed)
    pretrained_path = None
    if stored:
        model_config = ModelConfig.parse(stored.manifest["modelConfig"], "modelConfig")
        params = M.init_params_rng(M.classifier_param_specs(model_config, outputs), rng.fork())
    elif record["source"]["kind"] == "pretrained":
        try:
            pretrained_path = resolve_checkpoint(record["source"]["checkpoint"])
            source = load_checkpoint(pretrained_path)
        except (ConfigError, ValueError) as error:
            fail(f"--from {record['source']['checkpoint']}: {error}")
            raise
        if source.manifest["kind"] != "pretrain":
            fail(f"{pretrained_path} is a fine-tuning checkpoint; fine-tuning starts from a pre-training checkpoint (the output of mimir pretrain).")
        model_config = ModelConfig.parse(source.manifest["modelConfig"], "modelConfig")
        if model_config.image_size != dataset.image_size:
            fail(f"{pretrained_path} was pre-trained on {model_config.image_size} px images but the dataset has {dataset.image_size} px ones.")
        params = M.classifier_from_encoder(source.params, model_config, outputs, rng.fork(), float(record["headInitStd"]))
    else:
        model_config = ModelConfig.parse(job_config["model"], "model")  # type: ignore[index]
        specs = M.classifier_param_specs(model_config, outputs)
        params = M.adjust_init(model_config, M.init_params_rng(specs, rng.fork(), float(record["headInitStd"])))
    M.check_params(params, M.classifier_param_specs(model_config, outputs))
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    optim_cfg = record["optimizer"]
    generalist = GeneralistTrainer(params, model_config, run, optim_cfg) if run.method == "generalist" else None
    optimizer = None if generalist else AdamW(
        params,
        betas=(optim_cfg["beta1"], optim_cfg["beta2"]),
        weight_decay=optim_cfg["weightDecay"],
        max_grad_norm=optim_cfg["clipGrad"],
        lr_scale=layerwise_lr_scale(model_config.depth, optim_cfg["layerDecay"]),
    )
    state_dir = os.path.join(out_dir, GENERALIST_STATE_DIR)
    iterator_state = None
    epoch = 0
    if stored:
        restore_weights(stored, params, optimizer, device)
        if generalist:
            _restore_generalist(generalist, os.path.join(state_dir, os.path.basename(resume_from)), int(stored.manifest["step"]), device, fail)
        iterator_state, epoch = restore_position(stored, rng, state)
    batch_size = int(record["batchSize"])
    epochs = int(record["epochs"])
    iterator, sampler, average = run_batches(dataset, batch_size, seed, record["augmentation"], iterator_state, params, world, fail)
    rows = sampler.rows
    steps_per_epoch = iterator.batches_per_epoch
    peak_lr = scaled_learning_rate(optim_cfg["baseLr"], batch_size)
    if world.rank == 0:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
            f.write(json.dumps({**record, "model": _model_json(model_config), "pretrained": pretrained_path}, indent=2) + "\n")
    emit_started(emitter, "finetune", out_dir, opening, epoch, steps_per_epoch, steps_per_epoch * epochs, device, precision, world)
    origin = f"resumed from {resume_from}" if resume_from else (f"from {pretrained_path}" if pretrained_path else "from scratch (End2End)")
    emitter.log(
        "info",
        f"{run.method} fine-tuning {origin} on the PyTorch engine ({device.type}, {world.size} process{'es' if world.size > 1 else ''}): "
        f"model {model_config.width}x{model_config.depth}, {num_classes} outputs, {steps_per_epoch} steps per epoch of {batch_size} images"
        + (f", {run.threat} eps {run.eps:g}/255." if run.method != "natural" else "."),
    )
    events = StepEvents(emitter, batch_size, epochs, steps_per_epoch, int(record["logEvery"]), system_metrics(device, world.rank, lambda m: emitter.log("warn", m)))
    started = time.perf_counter()
    summary: Dict[str, float] = {}
    last_lr = 0.0
    adversarial = run.method != "natural"
    while epoch < epochs:
        sums = {"loss": 0.0, "clean": 0.0, "adv": 0.0, "images": 0, "steps": 0}
        for b in range(steps_per_epoch):
            if any_rank(stop.requested, world, device):
                raise Cancelled()
            step_start = time.perf_counter()
            sampler.set_order(iterator.plan.order)
            ids = sampler.batch_indices(iterator.batch)
            images_np, labels_np, _ = iterator.next()
            # trainer.ts nextTrainBatch: RandAugment, then MixUp/CutMix, from the run's Rng before the step's draws.
            if record["randAugment"] is not None:
                rand_augment_batch(images_np, record["randAugment"], rng)
            images_np, targets_np, labels_np, _, _ = mix_batch(images_np, labels_np, num_classes, record["mixup"], rng)
            lr = learning_rate_at(peak_lr, optim_cfg["minLr"], optim_cfg["warmupEpochs"], epochs, epoch + b / steps_per_epoch)
            seed_step = rng.next_uint32() if adversarial else None
            images = torch.from_numpy(images_np[rows]).to(device)
            labels = torch.from_numpy(labels_np[rows]).to(device)
            targets = torch.from_numpy(targets_np[rows]).to(device)
            noise = start_noise(run, seed_step, ids, tuple(images.shape)) if seed_step is not None else None
            noise = noise.to(device) if noise is not None else None
            n = len(ids)
            if generalist:
                with torch.autocast(device.type, dtype=precision.autocast_dtype, enabled=precision.autocast_dtype is not None):
                    g = generalist.gradients(images, targets, labels, noise, rng, precision.loss_scale())
                robust_weight, _, _, skipped_learners = generalist.apply(
                    average({k: t.float() for k, t in g.robust.items()}),
                    average({k: t.float() for k, t in g.natural.items()}),
                    lr, epoch, b, steps_per_epoch, state["step"], precision.scaler, g.loss_scale,
                )
                for learner in skipped_learners:
                    emitter.log("warn", overflow_message(state["step"] + 1, precision, f"the {learner} learner's"))
                values = {
                    "loss": g.robust_loss.item(),
                    "natural_loss": g.natural_loss.item(),
                    "clean_acc": g.clean_correct.item() / n,
                    "adv_acc": g.adv_correct.item() / n,
                }
                values = average_scalars(values, world, device)
                values["robust_weight"] = robust_weight
            else:
                with torch.autocast(device.type, dtype=precision.autocast_dtype, enabled=precision.autocast_dtype is not None):
                    result = finetune_step(params, model_config, run, images, targets, labels, noise, rng, seed=seed_step, ids=ids, epoch=epoch, loss_scale=precision.loss_scale())
                grads = average({k: g.float() for k, g in result.grads.items()})
                norm = None
                if optimizer:
                    norm, skipped = optimizer.scaled_step(grads, lr, precision.scaler)
                    if skipped:
                        emitter.log("warn", overflow_message(state["step"] + 1, precision, "this"))
                        norm = None  # the norm of overflowed gradients is not a measurement
                values = {"loss": result.loss.item(), "clean_acc": result.clean_correct.item() / n}
                if result.adv_correct is not None:
                    values["adv_acc"] = result.adv_correct.item() / n
                values.update({k: v.item() for k, v in result.parts.items()})
                values = average_scalars(values, world, device)
                if norm is not None:
                    values["grad_norm"] = norm
            state["step"] += 1
            last_lr = lr
            message = non_finite_stop(values, state["step"], epoch, state["last"])
            if message:
                fail(message)
            sums["loss"] += values["loss"]
            sums["clean"] += values["clean_acc"] * batch_size
            sums["adv"] += values.get("adv_acc", 0.0) * batch_size
            sums["images"] += batch_size
            sums["steps"] += 1
            events.after(state["step"], epoch, b, time.perf_counter() - step_start, values, lr, {})
        epoch += 1
        epoch_values = {"train_loss": sums["loss"] / sums["steps"], "train_clean_acc": sums["clean"] / sums["images"]}
        if adversarial:
            epoch_values["train_adv_acc"] = sums["adv"] / sums["images"]
        every = int(record["heldOut"]["every"])
        if held_out is not None and world.rank == 0 and (epoch % every == 0 or epoch == epochs):
            alpha = record["heldOut"].get("alpha")
            measured = held_out_accuracy(
                params, model_config, run, held_out, int(record["heldOut"]["size"]), int(record["heldOut"]["pgdSteps"]),
                (alpha / 255) if alpha is not None else run.eps / 255 / 4, seed, device,
            )
            epoch_values["heldout_natural_acc"] = measured["natural"]
            epoch_values["heldout_pgd_acc"] = measured["pgd"]
        summary.update(epoch_values)
        emitter.emit({"type": "metrics", "step": state["step"], "epoch": epoch, "values": epoch_values})
        if epoch % int(record["checkpointEvery"]) == 0 or epoch == epochs:
            save_epoch_checkpoint(
                emitter,
                world,
                state,
                checkpoints,
                kind="finetune",
                epoch=epoch,
                run_config=record,
                model_config=stored.manifest["modelConfig"] if stored else _model_json(model_config),
                params=params,
                optimizer=optimizer,
                lr=last_lr,
                rng_state=rng.state(),
                data_iterator=iterator.state(),
                metrics=summary,
                device=device,
                keep_last=int(record["keepCheckpoints"]),
                companion=(
                    Companion(state_dir, generalist.state, generalist.optimizer, lambda current: _prune_orphan_states(state_dir, checkpoints, current))
                    if generalist
                    else None
                ),
            )
    return finish(emitter, state, epoch, started, summary, events)


def _restore_generalist(trainer: GeneralistTrainer, path: str, step: int, device: torch.device, fail) -> None:
    """The learners and their optimiser from the state checkpoint beside the main one (same name, same step)."""
    try:
        stored = load_checkpoint(path)
    except (ConfigError, ValueError) as error:
        fail(f"Cannot resume: Generalist's learner state {path} is unreadable ({error})")
        raise
    if int(stored.manifest["step"]) != step:
        fail(f"Cannot resume: Generalist's learner state {path} holds step {stored.manifest['step']}, the checkpoint step {step}")
    with torch.no_grad():
        for k, p in trainer.state.items():
            if k not in stored.params:
                fail(f"Cannot resume: Generalist's learner state {path} lacks {k}")
            p.copy_(stored.params[k].reshape(p.shape).to(device))
    if stored.optimizer is None:
        fail(f"Cannot resume: Generalist's learner state {path} holds no optimiser state")
    o = stored.optimizer
    trainer.optimizer.import_state(o.step, o.param_steps, {k: t.to(device) for k, t in o.m.items()}, {k: t.to(device) for k, t in o.v.items()})


def _prune_orphan_states(state_dir: str, checkpoints: str, current: str) -> None:
    """Remove Generalist state checkpoints whose main checkpoint is gone (kept: `current`)."""
    mains = {e for e in os.listdir(checkpoints) if os.path.isdir(os.path.join(checkpoints, e))}
    for entry in os.listdir(state_dir):
        full = os.path.join(state_dir, entry)
        if os.path.isdir(full) and not entry.startswith(".") and entry != current and entry not in mains:
            shutil.rmtree(full, ignore_errors=True)


def _model_json(c: ModelConfig) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "imageSize": c.image_size,
        "patchSize": c.patch_size,
        "channels": c.channels,
        "width": c.width,
        "depth": c.depth,
        "heads": c.heads,
        "mlpRatio": c.mlp_ratio,
        "decoderWidth": c.decoder_width,
        "decoderDepth": c.decoder_depth,
        "decoderHeads": c.decoder_heads,
        "encoder": dict(c.encoder),
    }
    if c.normalize is not None:
        out["normalize"] = {"mean": list(c.normalize.mean), "std": list(c.normalize.std)}
    return out
