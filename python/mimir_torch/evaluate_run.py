"""Robust evaluation on the PyTorch engine, for the encoders only it runs (ConvNeXt, Swin) or a run that
asks for it: natural accuracy and PGD on cross-entropy (l_inf / l_2, steps, step size, restarts, random
start, best or last iterate), as src/engine/attacks/pgd.ts defines them, with the gradient-masking checks on
the first batch (gradient_masking.py), the flipped examples' PNG strips (flipped/) and the accuracy under
common corruptions, on images the Node side corrupts and feeds in (corruption_feed.py). The Node side
(src/torch/evaluate.ts) plans the request (defaults resolved, attacks it cannot run here refused by name), picks
the example ids and validates the report this writes against the EvaluationReport schema (src/shared/evaluation.ts).

job config: {"request": the parsed request, "ids": [split indices], "description": the dataset's, "attacks": [{"kind": "natural" |
"pgd", "key", "label", "implementation", "inWorstCase", "spec"?: the PGD spec in pixel units}],
"worstCaseImplementation", "corruptions": null | {"types", "severities", "table", "implementation", "folder": the
feed's folder, null where this machine holds no rank 0}}.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from . import model as M
from .checkpoint import load_checkpoint
from .corruption_feed import CorruptionFeed
from .config import ConfigError, ModelConfig
from .distributed import World
from .events import Emitter
from .finetune_run import resolve_checkpoint
from .finetune_step import merge_dbat_logits, pgd_start, project, steepest_direction
from .gradient_masking import masking_checks
from .png import write_png_strip
from .precision import Precision
from .runtime import Stop, Cancelled, RunFailed, describe_engine, open_dataset

REPORT_FILE = "report.json"
FLIPPED_IMAGES_DIR = "flipped"  # src/shared/evaluation.ts
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PgdSettings:
    threat: str
    eps: float  # [0, 1] pixel units
    alpha: float
    steps: int
    restarts: int
    random_start: bool
    keep: str  # 'best' | 'last'
    seed: int

    @staticmethod
    def from_spec(spec: Mapping[str, Any]) -> "PgdSettings":
        if spec.get("loss", "ce") != "ce":
            raise ConfigError(f"the PyTorch engine's PGD maximises cross-entropy, not {spec.get('loss')!r}")
        return PgdSettings(spec["threat"], float(spec["eps"]), float(spec["alpha"]), int(spec["steps"]), int(spec["restarts"]), bool(spec["randomStart"]), spec["keep"], int(spec["seed"]))


def _pgd_run(forward: Forward, x: torch.Tensor, y: torch.Tensor, ids: Sequence[int], s: PgdSettings, round_: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run (pgd.ts pgdRun): per example, whether some observed iterate ('best': every iterate, the
    start and the final one included; 'last': the final one) is misclassified, the class it was given there
    and that point (the first such iterate's; else the final iterate's)."""
    if s.random_start:
        current = project(x, x + pgd_start(s.seed, ids, tuple(x.shape), s.threat, s.eps, round_).to(x.device, x.dtype), s.eps, s.threat)
    else:
        current = x.clone()
    wrong = torch.zeros(len(ids), dtype=torch.bool, device=x.device)
    predicted = torch.zeros_like(y)
    points = current.detach().clone()

    def observe(point: torch.Tensor, logits: torch.Tensor) -> None:
        pred = logits.detach().argmax(dim=1)
        newly = (pred != y) & ~wrong
        predicted[newly] = pred[newly]
        points[newly] = point.detach()[newly]
        wrong.copy_(wrong | newly)

    for _ in range(s.steps):
        current = current.detach().requires_grad_(True)
        logits = forward(current)
        if s.keep == "best":
            observe(current, logits)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y, reduction="sum"), [current])
        current = project(x, current.detach() + s.alpha * steepest_direction(grad, s.threat), s.eps, s.threat)
    with torch.no_grad():
        final = forward(current)
    observe(current, final)
    predicted[~wrong] = final.argmax(dim=1)[~wrong]
    points[~wrong] = current[~wrong]
    return wrong, predicted, points


def pgd_robust(forward: Forward, x: torch.Tensor, y: torch.Tensor, ids: Sequence[int], s: PgdSettings) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per example: still correctly classified after PGD with its restarts (pgd.ts pgd: each restart from a new
    random start, only on the examples correct so far; clean mistakes count as not robust), and the class
    the attack's point was given, and that point."""
    with torch.no_grad():
        robust = forward(x).argmax(dim=1) == y
    wrong, predicted, points = _pgd_run(forward, x, y, ids, s, 0)
    robust &= ~wrong
    for round_ in range(1, s.restarts):
        rows = torch.nonzero(robust).flatten()
        if len(rows) == 0:
            break
        wrong, pred, found = _pgd_run(forward, x[rows], y[rows], [ids[int(r)] for r in rows], s, round_)
        robust[rows[wrong]] = False
        predicted[rows[wrong]] = pred[wrong]
        points[rows[wrong]] = found[wrong]
    return robust, predicted, points


def write_flipped_images(out_dir: str, key: str, clean: np.ndarray, adversarial: np.ndarray, indices: List[int], s: PgdSettings) -> Optional[Dict[str, Any]]:
    """An attack's flipped examples as three PNG strips in out_dir/flipped (tally.ts writeFlippedImages): clean,
    adversarial, and the perturbation shown as 0.5 + scale * delta (l_inf: +-eps fills the range; l_2: the
    largest |delta| shown does)."""
    if len(indices) == 0:
        return None
    directory = os.path.join(out_dir, FLIPPED_IMAGES_DIR)
    os.makedirs(directory, exist_ok=True)
    largest = float(np.abs(adversarial.astype(np.float64) - clean).max())
    scale = 0.5 / s.eps if s.threat == "linf" else 0.5 / max(largest, 1e-6)
    base = re.sub(r"[^a-z0-9-]+", "-", key, flags=re.IGNORECASE)
    files = {"clean": f"{base}-clean.png", "adversarial": f"{base}-adversarial.png", "perturbation": f"{base}-perturbation.png"}
    strips = {"clean": clean, "adversarial": adversarial, "perturbation": 0.5 + scale * (adversarial.astype(np.float64) - clean)}
    for kind, name in files.items():
        write_png_strip(os.path.join(directory, name), strips[kind])
    return {**files, "indices": indices, "imageSize": int(clean.shape[1]), "perturbationScale": scale}


def corruption_report(plan: Mapping[str, Any], right: Mapping[Tuple[str, int], int], n: int, seed: int, examples: Mapping[str, Any], backend: str, seconds: float) -> Dict[str, Any]:
    """The report's corruption table, as evaluate.ts corruptionReportOf builds it: accuracy per cell, the mean
    over severities per type and the mean over every cell."""
    cells = [{"type": t, "severity": int(s), "accuracy": right[(t, int(s))] / max(n, 1)} for t in plan["types"] for s in plan["severities"]]
    by_type = {t: sum(c["accuracy"] for c in cells if c["type"] == t) / len(plan["severities"]) for t in plan["types"]}
    return {
        "table": plan["table"],
        "implementation": plan["implementation"],
        "seed": seed,
        "examples": examples,
        "backend": backend,
        "cells": cells,
        "meanByType": by_type,
        "mean": sum(c["accuracy"] for c in cells) / max(len(cells), 1),
        "durationMs": seconds * 1000,
    }


def _fail(emitter: Emitter, message: str) -> None:
    emitter.emit({"type": "failed", "message": message, "step": None, "lastCheckpoint": None, "cause": "config"})
    raise RunFailed(message)


def run_evaluation(job: Mapping[str, Any], _resume: bool, _epochs: Optional[int], out_dir: str, device: torch.device, precision: Precision, world: World, emitter: Emitter, stop: Stop) -> Dict[str, Any]:
    started = time.perf_counter()
    request = job["request"]
    try:
        path = resolve_checkpoint(request["checkpoint"])
        ckpt = load_checkpoint(path)
        if ckpt.manifest["kind"] != "finetune":
            raise ConfigError(f"{path} is a {ckpt.manifest['kind']} checkpoint; evaluation takes a fine-tuning checkpoint (the output of mimir finetune)")
        config = ModelConfig.parse(ckpt.manifest["modelConfig"], "modelConfig")
        record = ckpt.manifest.get("runConfig") or {}
        dataset = open_dataset(request["dataset"])
    except (ConfigError, FileNotFoundError, ValueError) as error:
        _fail(emitter, str(error))
        raise
    method = record.get("method")
    num_classes = int(record.get("numClasses", dataset.num_classes))
    outputs = 2 * num_classes if method == "dbat" else num_classes
    M.check_params(ckpt.params, M.classifier_param_specs(config, outputs))
    if dataset.num_classes != num_classes or dataset.image_size != config.image_size:
        _fail(emitter, f"{path} classifies {config.image_size} px images into {num_classes} classes but the dataset has {dataset.image_size} px images of {dataset.num_classes}: give the dataset it was fine-tuned on.")
    params = {k: v.detach().to(device) for k, v in ckpt.params.items()}

    def forward(x: torch.Tensor) -> torch.Tensor:
        z = M.classifier_forward(params, config, x)
        return merge_dbat_logits(z, num_classes, record["dbat"]["merge"]) if method == "dbat" else z

    ids: List[int] = [int(i) for i in job["ids"]]
    outside = [i for i in ids if i >= len(dataset)]
    if outside:
        _fail(emitter, f"examples.ids: {', '.join(map(str, outside[:5]))} past the end of the split ({len(dataset)} examples)")
    attacks = job["attacks"]
    pgds = {a["key"]: PgdSettings.from_spec(a["spec"]) for a in attacks if a["kind"] == "pgd"}
    batch_size = int(request["batchSize"])
    image_budget = int(request["flipped"]["images"])
    source = f"{request['dataset']['kind']}/{request['dataset']['split']}"
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    corruptions = job.get("corruptions")
    cells: List[Tuple[str, int]] = [(t, int(s)) for t in corruptions["types"] for s in corruptions["severities"]] if corruptions else []
    feed: Optional[CorruptionFeed] = None
    if corruptions and world.rank == 0:
        if not corruptions.get("folder"):
            _fail(emitter, "internal: corruptions were asked for without the folder of the corrupted images")
        feed = CorruptionFeed(corruptions["folder"], lambda: stop.requested)
    total = max(1, len(batches) * (len(pgds) + 1 + (1 if corruptions else 0)))
    emitter.emit({"type": "started", "runKind": "evaluate", "backend": "torch", "engine": describe_engine(device, precision, world), "outDir": out_dir, "step": 0, "epoch": 0, "totalSteps": total, "stepsPerEpoch": total, "resumedFrom": None})
    emitter.log("info", f"Evaluating {path} ({method}, {num_classes} classes) on {len(ids)} examples on the PyTorch engine ({device.type}); attacks: {', '.join([*(a['label'] for a in attacks), *(['corruptions'] if corruptions else [])])}.")
    clean: List[bool] = []
    robust: Dict[str, List[bool]] = {k: [] for k in pgds}
    adversarial: Dict[str, List[int]] = {k: [] for k in pgds}
    seconds: Dict[str, float] = {k: 0.0 for k in pgds}
    predictions: List[int] = []
    labels: List[int] = []
    # Per PGD attack, the clean and adversarial images of the first flipped examples (request.flipped.images).
    samples: Dict[str, Tuple[List[np.ndarray], List[np.ndarray], List[int]]] = {k: ([], [], []) for k in pgds}
    masking: Optional[Dict[str, Any]] = None
    corrupted_right: Dict[Tuple[str, int], int] = {cell: 0 for cell in cells}
    corruption_seconds = 0.0
    done, images, t0 = 0, 0, time.perf_counter()

    def advance(count: int) -> None:
        nonlocal done, images
        done, images = done + 1, images + count
        elapsed = max(time.perf_counter() - t0, 1e-6)
        emitter.emit({"type": "progress", "epoch": 1, "epochs": 1, "step": done, "totalSteps": total, "imagesPerSecond": images / elapsed, "etaSeconds": elapsed / done * max(total - done, 0)})

    for batch in batches:
        if stop.requested:
            raise Cancelled()
        x_np, y_np = dataset.batch(batch)
        x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device).long()
        with torch.no_grad():
            pred = forward(x).argmax(dim=1)
        clean += (pred == y).tolist()
        predictions += pred.tolist()
        labels += y.tolist()
        advance(len(batch))
        if masking is None and pgds and request["maskingChecks"]:
            masking = {**masking_checks(forward, x, y, request["threat"]), "examples": {"count": len(batch), "ids": batch, "source": source}}
        for key, settings in pgds.items():
            if stop.requested:
                raise Cancelled()
            t = time.perf_counter()
            kept, predicted, points = pgd_robust(forward, x, y, batch, settings)
            robust[key] += kept.tolist()
            adversarial[key] += predicted.tolist()
            seconds[key] += time.perf_counter() - t
            clean_images, adversarial_images, indices = samples[key]
            for row in torch.nonzero((pred == y) & ~kept).flatten().tolist():
                if len(indices) >= image_budget:
                    break
                clean_images.append(x_np[row])
                adversarial_images.append(points[row].detach().cpu().numpy())
                indices.append(batch[row])
            advance(len(batch))
        if corruptions:
            t = time.perf_counter()
            # Rank 0 evaluates them (the feed is read once); the other ranks write no report.
            for cell in cells if feed is not None else []:
                xc = torch.from_numpy(feed.take(len(batch), dataset.image_size)).to(device)
                with torch.no_grad():
                    corrupted_right[cell] += int((forward(xc).argmax(dim=1) == y).sum())
            corruption_seconds += time.perf_counter() - t
            advance(len(batch))

    n = len(ids)
    natural = sum(clean) / n if n else 0.0
    examples = {"count": n, "ids": ids, "source": source}
    backend = "torch"
    listed = int(request["flipped"]["list"])

    def protocol(a: Mapping[str, Any]) -> Dict[str, Any]:
        s = pgds.get(a["key"])
        return {
            "threat": s.threat if s else None,
            "eps": s.eps if s else None,
            "eps255": s.eps * 255 if s else None,
            "attack": "pgd" if s else "natural",
            "implementation": a["implementation"],
            "steps": s.steps if s else None,
            "restarts": s.restarts if s else None,
            "seed": int(request["seed"]),
            "examples": examples,
            "backend": backend,
            "inWorstCase": bool(a["inWorstCase"]),
            "iterate": s.keep if s else None,
        }

    # As the tfjs evaluator: the zero-gradient, randomness and unbounded-radius warnings go next to every PGD number.
    masking_warnings = masking["warnings"] if masking else []
    outcomes = []
    for a in attacks:
        kept = robust.get(a["key"], clean)
        flipped = [i for i in range(n) if clean[i] and not kept[i]]
        images = None
        if a["key"] in pgds and samples[a["key"]][2]:
            clean_images, adversarial_images, indices = samples[a["key"]]
            images = write_flipped_images(out_dir, a["key"], np.stack(clean_images), np.stack(adversarial_images), indices, pgds[a["key"]]) if world.rank == 0 else None
        outcomes.append({
            "key": a["key"],
            "label": a["label"],
            "cleanAccuracy": natural,
            "robustAccuracy": sum(kept) / n if n else 0.0,
            "protocol": protocol(a),
            "warnings": list(masking_warnings) if a["key"] in pgds else [],
            "flipped": {"count": len(flipped), "listed": [{"index": ids[i], "label": labels[i], "cleanPrediction": predictions[i], "adversarialPrediction": adversarial[a["key"]][i]} for i in flipped[:listed]], "images": images},
            "durationMs": seconds.get(a["key"], 0.0) * 1000,
        })
    for o in outcomes:
        said = f" ({' '.join(w['message'] for w in o['warnings'])})" if o["warnings"] else ""
        emitter.log("warn" if o["warnings"] else "info", f"{o['label']}: {o['robustAccuracy'] * 100:.2f}%{said}")
    counted = [a["key"] for a in attacks if a["kind"] == "pgd" and a["inWorstCase"]]
    worst = None
    if counted:
        broken_by = ["clean" if not clean[i] else next((k for k in counted if not robust[k][i]), None) for i in range(n)]
        worst = {"robustAccuracy": sum(b is None for b in broken_by) / max(n, 1), "attacks": counted, "brokenBy": broken_by, "implementation": job["worstCaseImplementation"]}
    report = {
        "format": "mimir-evaluation",
        "version": 1,
        "createdAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "backend": backend,
        "model": {"checkpoint": path, "method": method, "modelConfig": ckpt.manifest["modelConfig"], "numClasses": num_classes, "classNames": list(record.get("classNames") or [str(i) for i in range(num_classes)])},
        "dataset": job["description"],
        "request": request,
        "threat": request["threat"],
        "eps": float(request["eps"]) / 255,
        "eps255": float(request["eps"]),
        "examples": {**examples, "pick": request["examples"]["pick"], "seed": int(request["seed"])},
        "naturalAccuracy": natural,
        "attacks": outcomes,
        "worstCase": worst,
        "masking": masking,
        "corruptions": corruption_report(corruptions, corrupted_right, n, int(request["seed"]), examples, backend, corruption_seconds) if corruptions else None,
        "noEvidence": [],
        "durationMs": (time.perf_counter() - started) * 1000,
    }
    file = os.path.join(out_dir, REPORT_FILE)
    if world.rank == 0:
        os.makedirs(out_dir, exist_ok=True)
        temporary = f"{file}.tmp-{os.getpid()}"
        with open(temporary, "w") as f:
            f.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
        os.replace(temporary, file)
    summary = {"natural_accuracy": natural, **{f"robust_accuracy/{o['key']}": o["robustAccuracy"] for o in outcomes if o["key"] in pgds}}
    if worst:
        summary["robust_accuracy/worst_case"] = worst["robustAccuracy"]
    if report["corruptions"]:
        summary["corruption_accuracy/mean"] = report["corruptions"]["mean"]
    emitter.emit({"type": "metrics", "step": total, "epoch": 1, "values": summary})
    emitter.emit({"type": "done", "step": total, "epoch": 1, "output": {"kind": "report", "path": file}, "seconds": time.perf_counter() - started, "summary": summary})
    return summary
