"""Checkpoints in the workbench's own format (src/engine/checkpoint, src/shared/checkpoint.ts), so a
PyTorch run's checkpoint fine-tunes, evaluates and exports in the tfjs engine and the other way round:

  <dir>/epoch-NNNN/model.safetensors      the parameters, workbench names and layouts, F32
  <dir>/epoch-NNNN/optimizer.safetensors  exp_avg.<name>, exp_avg_sq.<name>
  <dir>/epoch-NNNN/checkpoint.json        manifest: config, model config, optimizer, rng, metrics, files + sha256
  <dir>/latest                            the newest checkpoint's name

Saved atomically as save.ts does: a hidden temporary directory renamed into place, then `latest`."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch

from .safetensors_io import read_safetensors, write_safetensors

FORMAT = "mimir-checkpoint"
VERSION = 1
MANIFEST = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
LATEST = "latest"
M_PREFIX = "exp_avg."
V_PREFIX = "exp_avg_sq."


class CheckpointError(ValueError):
    def __init__(self, checkpoint: str, problem: str) -> None:
        super().__init__(f"checkpoint {checkpoint}: {problem}")


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def _file_info(path: str) -> Dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class OptimizerState:
    step: int
    param_steps: Dict[str, int]
    m: Dict[str, torch.Tensor]
    v: Dict[str, torch.Tensor]
    lr: float
    betas: List[float]
    eps: float
    weight_decay: float
    max_grad_norm: Optional[float]


def save_checkpoint(
    directory: str,
    *,
    kind: str,
    epoch: int,
    step: int,
    run_config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    params: Mapping[str, torch.Tensor],
    optimizer: Optional[OptimizerState],
    rng_state: List[int],
    data_iterator: Mapping[str, Any],
    metrics: Mapping[str, float],
    backend: str,
    keep_last: Optional[int] = None,
) -> str:
    """Write checkpoint epoch-NNNN in `directory`, point `latest` at it, keep the newest `keep_last`."""
    os.makedirs(directory, exist_ok=True)
    name = checkpoint_name(epoch)
    temporary = os.path.join(directory, f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}")
    os.makedirs(temporary)
    try:
        write_safetensors(
            os.path.join(temporary, MODEL_FILE),
            {k: v.detach().float().cpu().contiguous() for k, v in params.items()},
            {"format": FORMAT, "kind": kind},
        )
        files: Dict[str, Any] = {MODEL_FILE: _file_info(os.path.join(temporary, MODEL_FILE))}
        section: Optional[Dict[str, Any]] = None
        if optimizer is not None:
            moments: Dict[str, torch.Tensor] = {}
            for k in params:
                moments[f"{M_PREFIX}{k}"] = optimizer.m[k].detach().float().cpu().contiguous()
            for k in params:
                moments[f"{V_PREFIX}{k}"] = optimizer.v[k].detach().float().cpu().contiguous()
            write_safetensors(os.path.join(temporary, OPTIMIZER_FILE), moments, {"format": FORMAT, "step": str(optimizer.step)})
            files[OPTIMIZER_FILE] = _file_info(os.path.join(temporary, OPTIMIZER_FILE))
            differing = {k: t for k, t in optimizer.param_steps.items() if t != optimizer.step}
            section = {
                "name": "adamw",
                "step": optimizer.step,
                **({"paramSteps": differing} if differing else {}),
                "lr": optimizer.lr,
                "betas": list(optimizer.betas),
                "eps": optimizer.eps,
                "weightDecay": optimizer.weight_decay,
                "maxGradNorm": optimizer.max_grad_norm,
                "extra": {},
            }
        now = datetime.datetime.now(datetime.timezone.utc)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": kind,
            "epoch": epoch,
            "step": step,
            "runConfig": run_config,
            "modelConfig": model_config,
            "optimizer": section,
            "rng": {"state": list(rng_state), "dataIterator": data_iterator},
            "metrics": {k: (float(v) if v == v and abs(v) != float("inf") else None) for k, v in metrics.items()},
            "createdAt": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "backend": backend,
            "files": files,
        }
        with open(os.path.join(temporary, MANIFEST), "x") as f:
            f.write(json.dumps(manifest, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(temporary)
        final = os.path.join(directory, name)
        if os.path.exists(final):
            old = os.path.join(directory, f".old-{name}-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(final, old)
            os.rename(temporary, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _fsync_dir(directory)
    pointer = os.path.join(directory, f".tmp-{LATEST}-{os.getpid()}-{secrets.token_hex(4)}")
    with open(pointer, "x") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(pointer, os.path.join(directory, LATEST))
    _fsync_dir(directory)
    if keep_last is not None:
        _retain(directory, name, keep_last)
    return final


def _retain(directory: str, saved: str, keep_last: int) -> None:
    found = []
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.startswith(".") or entry == LATEST or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, MANIFEST)) as f:
                manifest = json.load(f)
            found.append((int(manifest["step"]), int(manifest["epoch"]), entry))
        except (OSError, ValueError, KeyError):
            continue  # unreadable: a user's to inspect, never removed
    found.sort(reverse=True)
    for index, (_, _, entry) in enumerate(found):
        if index >= keep_last and entry != saved:
            hidden = os.path.join(directory, f".old-{entry}-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(os.path.join(directory, entry), hidden)
            shutil.rmtree(hidden, ignore_errors=True)


@dataclass
class Checkpoint:
    path: str
    manifest: Dict[str, Any]
    params: Dict[str, torch.Tensor]
    optimizer: Optional[OptimizerState]


def _verified(checkpoint: str, name: str, info: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    path = os.path.join(checkpoint, name)
    if not os.path.isfile(path):
        raise CheckpointError(checkpoint, f"{name} is missing")
    actual = _file_info(path)
    if actual["bytes"] != info["bytes"]:
        raise CheckpointError(checkpoint, f"{name} is {actual['bytes']} bytes, the manifest says {info['bytes']}")
    if actual["sha256"] != info["sha256"]:
        raise CheckpointError(checkpoint, f"{name} does not match its checksum: the file was changed or damaged")
    tensors, _ = read_safetensors(path)
    return tensors


def load_checkpoint(checkpoint: str) -> Checkpoint:
    """Read and verify one checkpoint directory (either engine's)."""
    try:
        with open(os.path.join(checkpoint, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(checkpoint, f"cannot read {MANIFEST} ({error})") from error
    if manifest.get("format") != FORMAT:
        raise CheckpointError(checkpoint, f"{MANIFEST} is not a MIMIR checkpoint (format {manifest.get('format')!r})")
    if manifest.get("version", 0) > VERSION:
        raise CheckpointError(checkpoint, f"format version {manifest['version']} is newer than this engine reads ({VERSION})")
    files = manifest["files"]
    params = _verified(checkpoint, MODEL_FILE, files[MODEL_FILE])
    optimizer: Optional[OptimizerState] = None
    section = manifest.get("optimizer")
    if section is not None:
        moments = _verified(checkpoint, OPTIMIZER_FILE, files[OPTIMIZER_FILE])
        m = {k[len(M_PREFIX) :]: v for k, v in moments.items() if k.startswith(M_PREFIX)}
        v = {k[len(V_PREFIX) :]: t for k, t in moments.items() if k.startswith(V_PREFIX)}
        steps = {name: int(section.get("paramSteps", {}).get(name, section["step"])) for name in params}
        optimizer = OptimizerState(
            step=int(section["step"]),
            param_steps=steps,
            m=m,
            v=v,
            lr=float(section["lr"]),
            betas=list(section["betas"]),
            eps=float(section["eps"]),
            weight_decay=float(section["weightDecay"]),
            max_grad_norm=section["maxGradNorm"],
        )
    return Checkpoint(checkpoint, manifest, params, optimizer)


def find_latest(directory: str) -> Optional[str]:
    """The checkpoint `latest` names, else the newest readable one by step; None when there is none."""
    if not os.path.isdir(directory):
        return None
    try:
        with open(os.path.join(directory, LATEST)) as f:
            name = f.read().strip()
        if name and os.path.isfile(os.path.join(directory, name, MANIFEST)):
            return os.path.join(directory, name)
    except OSError:
        pass
    best = None
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry, MANIFEST)
        if entry.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path) as f:
                step = int(json.load(f)["step"])
        except (OSError, ValueError, KeyError):
            continue
        if best is None or step > best[0]:
            best = (step, os.path.join(directory, entry))
    return best[1] if best else None
