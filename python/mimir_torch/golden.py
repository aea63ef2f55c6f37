"""One training step from inputs another engine wrote, for the parity ("golden step") tests.

  python3 -m mimir_torch.golden DIR [DIR ...]

DIR/case.json: {"kind": "pretrain" | "finetune", "model": ModelConfig, "run": the validated run config,
  "optimizer": {"lr", "betas", "weightDecay", "maxGradNorm", "layerDecay" (null: none)}}: after the
  step, one AdamW update with these settings of the gradients given as "update.<name>" (the other
  engine's: the first Adam update is about lr * sign(g), so it is compared from the same gradients).
DIR/inputs.safetensors: "param.<name>" (the workbench's names and layouts), "images" [N, H, W, C], and
  pretrain: "mask.visible", "mask.masked" (int32 [N, Lv], [N, Lm]), "attack.start" (absent for mae);
  finetune: "targets" [N, C], "labels" int32 [N], "attack.start" (absent for natural); case.json's
  "rng": {"seed", "ids"}: the step's Rng (its first draw seeds the attack streams, then drop path
  draws from it) and the batch's dataset ids; the start this engine draws itself from those streams
  is written as "start.own", for comparison with the given one; "rng.epoch" (DBAT's targets depend on it).
  Generalist: "grad.robust.<name>" and "grad.natural.<name>", then its update (each learner's AdamW with
  the run's optimizer settings, the EMAs and the global mix at case.json's "generalist" {epoch,
  batchIndex, stepsPerEpoch}) from the given "update.robust.<name>" / "update.natural.<name>";
  "param.<name>" of the global model and of every learner and EMA after it.
Writes DIR/outputs.safetensors ("grad.<name>", "param.<name>" after the update, "adversarial"); prints one JSON line, {"results": [the
scalars of each DIR, in order]} (one process for every case: torch's import is most of the time).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Dict, List

import torch

from .config import FinetuneSettings, ModelConfig, PretrainSettings
from .finetune_step import finetune_step
from .masking import PatchMask
from .optim import NO_WEIGHT_DECAY_NAMES, AdamW, layerwise_lr_scale
from .finetune_step import start_noise
from .generalist import GeneralistTrainer
from .pretrain_step import pretrain_step
from .rng import Rng
from .safetensors_io import read_safetensors, write_safetensors


def _params(inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k[len("param.") :]: v.float().requires_grad_(True) for k, v in inputs.items() if k.startswith("param.")}


def run_case(directory: str) -> Dict[str, object]:
    with open(os.path.join(directory, "case.json")) as f:
        case = json.load(f)
    inputs, _ = read_safetensors(os.path.join(directory, "inputs.safetensors"))
    model = ModelConfig.parse(case["model"])
    params = _params(inputs)
    images = inputs["images"].float()
    start = inputs.get("attack.start")
    outputs: Dict[str, torch.Tensor] = {}
    if case["kind"] == "pretrain":
        run = PretrainSettings.parse(case["run"], "run")
        mask = PatchMask(inputs["mask.visible"].long(), inputs["mask.masked"].long())

        def no_fresh_masks() -> PatchMask:
            raise ValueError("the golden step takes its masks from the inputs: attackMask 'fresh' is not supported here")

        r = pretrain_step(params, model, run, images, mask, start, no_fresh_masks)
        scalars: Dict[str, object] = {
            "loss": r.loss.item(),
            "recon": r.recon.item(),
            "mi": r.mi.item(),
            "attackLoss": r.attack_loss.item(),
        }
        outputs["adversarial"] = r.adversarial
        grads = r.grads
    elif case["run"]["method"] == "generalist":
        return _generalist_case(directory, case, inputs, model, params, images, outputs)
    else:
        run_ft = FinetuneSettings.parse(case["run"], "run")
        rng = Rng(int(case["rng"]["seed"]))
        ids = case["rng"]["ids"]
        seed = rng.next_uint32() if run_ft.method != "natural" else None
        if seed is not None:
            own = start_noise(run_ft, seed, ids, tuple(images.shape))
            if own is not None:
                outputs["start.own"] = own
        f = finetune_step(
            params, model, run_ft, images, inputs["targets"].float(), inputs["labels"].long(), start, rng,
            seed=seed, ids=ids, epoch=int(case["rng"].get("epoch", 0)),
        )
        scalars = {"loss": f.loss.item(), "cleanCorrect": f.clean_correct.item()}
        scalars.update({k: v.item() for k, v in f.parts.items()})
        if f.adv_correct is not None:
            scalars["advCorrect"] = f.adv_correct.item()
        if f.adversarial is not None:
            outputs["adversarial"] = f.adversarial
        grads = f.grads
    for name, g in grads.items():
        outputs[f"grad.{name}"] = g
    opt = case["optimizer"]
    adamw = AdamW(
        params,
        betas=(opt["betas"][0], opt["betas"][1]),
        weight_decay=opt["weightDecay"],
        max_grad_norm=opt["maxGradNorm"],
        lr_scale=layerwise_lr_scale(model.depth, opt["layerDecay"]) if opt["layerDecay"] is not None else None,
        no_decay_names=() if opt["decayTokens"] else NO_WEIGHT_DECAY_NAMES,
    )
    given = {k[len("update.") :]: v.float() for k, v in inputs.items() if k.startswith("update.")}
    norm = adamw.step(given, opt["lr"])
    if norm is not None:
        scalars["gradNorm"] = norm
    for name, p in params.items():
        outputs[f"param.{name}"] = p.detach()
    write_safetensors(os.path.join(directory, "outputs.safetensors"), outputs)
    return {"ok": True, "torch": torch.__version__, **scalars}


def _generalist_case(directory, case, inputs, model, params, images, outputs) -> Dict[str, object]:
    """Both learners' gradients ("grad.robust.<name>", "grad.natural.<name>"), then the trainer's update
    from the given ones ("update.robust.<name>", ...): "param.<name>" of the global model and of every
    learner and EMA after it. The optimiser is the run's (case.json's "optimizer" gives only the lr)."""
    run = FinetuneSettings.parse(case["run"], "run")
    rng = Rng(int(case["rng"]["seed"]))
    seed = rng.next_uint32()
    noise = start_noise(run, seed, case["rng"]["ids"], tuple(images.shape))
    if noise is not None:
        outputs["start.own"] = noise
    given_start = inputs.get("attack.start")
    trainer = GeneralistTrainer(params, model, run, case["run"]["optimizer"])
    g = trainer.gradients(images, inputs["targets"].float(), inputs["labels"].long(), given_start, rng)
    for prefix, grads in (("robust.", g.robust), ("natural.", g.natural)):
        for name, grad in grads.items():
            outputs[f"grad.{prefix}{name}"] = grad
    given = {k[len("update.") :]: v.float() for k, v in inputs.items() if k.startswith("update.")}
    robust = {k[len("robust.") :]: v for k, v in given.items() if k.startswith("robust.")}
    natural = {k[len("natural.") :]: v for k, v in given.items() if k.startswith("natural.")}
    step = case["generalist"]
    weight, synced, norms, _ = trainer.apply(
        robust, natural, case["optimizer"]["lr"], int(step["epoch"]), int(step["batchIndex"]), int(step["stepsPerEpoch"]), 0
    )
    for name, p in params.items():
        outputs[f"param.{name}"] = p.detach()
    for name, p in trainer.state.items():
        outputs[f"param.{name}"] = p.detach()
    write_safetensors(os.path.join(directory, "outputs.safetensors"), outputs)
    scalars: Dict[str, object] = {
        "loss": g.robust_loss.item(),
        "naturalLoss": g.natural_loss.item(),
        "cleanCorrect": g.clean_correct.item(),
        "advCorrect": g.adv_correct.item(),
        "robustWeight": weight,
        "synced": 1.0 if synced else 0.0,
    }
    if norms:
        scalars["gradNorm"] = norms[0]
        scalars["naturalGradNorm"] = norms[1]
    return {"ok": True, "torch": torch.__version__, **scalars}


def main(argv: List[str]) -> int:
    if not argv:
        print("usage: python3 -m mimir_torch.golden DIR [DIR ...]", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(json.dumps({"results": [run_case(directory) for directory in argv]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
